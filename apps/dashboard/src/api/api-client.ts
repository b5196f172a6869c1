/**
 * The public API, as the dashboard calls it: JSON over fetch with the API token in the
 * Authorization header. Errors arrive as RFC 9457 problem details.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type QueryValue = string | number | boolean | readonly string[] | undefined | null;

/** `?a=1&tag=x&tag=y`: arrays repeat their key; empty values are left out. */
export function queryString(query: Record<string, QueryValue>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) for (const v of value) params.append(key, v);
    else params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

export interface Api {
  get<T>(path: string, query?: Record<string, QueryValue>): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
}

export function createApi(
  token: () => string | null,
  onUnauthorized: () => void,
  fetchImpl: typeof fetch = (...args) => globalThis.fetch(...args),
): Api {
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const t = token();
    if (t) headers.authorization = `Bearer ${t}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetchImpl(path, {
        method,
        headers,
        cache: 'no-store',
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch {
      throw new ApiError(0, 'network', 'the server cannot be reached');
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const problem = (parsed ?? {}) as { code?: unknown; detail?: unknown };
      if (res.status === 401) onUnauthorized();
      throw new ApiError(
        res.status,
        typeof problem.code === 'string' ? problem.code : `http_${res.status}`,
        typeof problem.detail === 'string' ? problem.detail : `the server answered ${res.status}`,
      );
    }
    return parsed as T;
  }
  return {
    get: (path, query) => call('GET', `${path}${query ? queryString(query) : ''}`),
    post: (path, body) => call('POST', path, body),
  };
}

/** A missing route (a feature this server does not have yet) reads as an empty state. */
export const isMissingRoute = (err: unknown) =>
  err instanceof ApiError && err.status === 404 && err.code === 'route_not_found';
