import { useState } from 'preact/hooks';
import { ApiError, createApi } from '../api/api-client.js';

/**
 * Sign-in with an API token (issued by `POST /api/v1/tokens` or the admin token file). The
 * token is checked with one cheap request before it is kept.
 */
export function SignIn(props: { notice: string | null; onSignedIn(token: string): void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const candidate = token.trim();
    if (!candidate) {
      setError('Paste an API token.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await createApi(
        () => candidate,
        () => undefined,
      ).get('/api/v1/devices', { limit: 1 });
      props.onSignedIn(candidate);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? 'This token is not accepted.'
          : err instanceof ApiError && err.status === 403
            ? 'This token cannot read devices (it needs the viewer role).'
            : err instanceof ApiError
              ? err.message
              : 'The server cannot be reached.',
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="sign-in">
      <form class="panel sign-in__form" onSubmit={submit} aria-describedby="sign-in-help">
        <h1>Outpost</h1>
        <p id="sign-in-help" class="muted">
          Sign in with an API token. It is kept in this tab only and sent in request headers, never
          in addresses.
        </p>
        {props.notice && (
          <p class="notice" role="status">
            {props.notice}
          </p>
        )}
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-errormessage={error ? 'token-error' : undefined}
          required
        />
        <p id="token-error" class="error" role="alert">
          {error ?? ''}
        </p>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
