import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api/api-client.js';

export interface RequestState<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  /** Fetches again; the previous data stays shown meanwhile (no layout jump). */
  reload(): void;
}

/** Runs `load` when `key` changes; answers of superseded requests are ignored. */
export function useRequest<T>(key: string | null, load: () => Promise<T>): RequestState<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({
    loading: key !== null,
  });
  const generation = useRef(0);
  const loader = useRef(load);
  loader.current = load;

  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    loader.current().then(
      (data) => {
        if (mine === generation.current) setState({ data, loading: false });
      },
      (err: unknown) => {
        if (mine !== generation.current) return;
        const error =
          err instanceof ApiError ? err : new ApiError(0, 'client', (err as Error).message);
        setState((s) => ({ data: s.data, error, loading: false }));
      },
    );
  }, []);

  useEffect(() => {
    if (key === null) return;
    run();
  }, [key, run]);

  return { data: state.data, error: state.error, loading: state.loading, reload: run };
}
