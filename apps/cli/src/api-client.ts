import { z } from 'zod';
import type { TokenSource } from './config.js';
import { tokenHint } from './config.js';
import { CliError, LOGIN_HINT, oneLine } from './errors.js';

/**
 * A small typed client for the ingest HTTP API (`/api/v1`). Every failure becomes one
 * `CliError`: RFC 9457 problem details keep their `code` and `detail`; a network failure
 * says which server could not be reached and why.
 */

export type QueryValue = string | number | boolean | readonly string[] | undefined;
export type Query = Readonly<Record<string, QueryValue>>;

export interface ApiClientOptions {
  /** Base URL of the service, without a trailing slash. */
  baseUrl: string;
  /** Bearer token; requests marked `auth: false` go without it. */
  token?: string | undefined;
  tokenSource?: TokenSource | undefined;
  timeoutMs: number;
  userAgent?: string;
  fetch?: typeof fetch;
}

export type Body =
  | { json: unknown }
  | { text: string; contentType: string }
  /** Streamed as it is read (a firmware artifact), never held in memory whole. */
  | { stream: ReadableStream<Uint8Array>; contentType: string };

export interface RequestOptions<T> {
  schema: z.ZodType<T>;
  query?: Query;
  body?: Body;
  /** Send the API token (default). `POST /enroll` is authorized by its body instead. */
  auth?: boolean;
  timeoutMs?: number;
  /** Further request headers (e.g. the manifest of a firmware upload). */
  headers?: Readonly<Record<string, string>>;
}

/** One Server-Sent Event (the `data` lines joined). */
export interface ServerEvent {
  event: string;
  data: string;
}

/** RFC 9457 problem details as the service sends them, extension members included. */
export const problemSchema = z.looseObject({
  type: z.string().optional(),
  title: z.string().optional(),
  status: z.number().optional(),
  detail: z.string().optional(),
  code: z.string().optional(),
});
export type Problem = z.infer<typeof problemSchema>;

export interface RequestContext {
  method: string;
  path: string;
  baseUrl: string;
  tokenSource?: TokenSource | undefined;
  retryAfter?: string | null | undefined;
}

export class ApiClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly options: ApiClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  get<T>(path: string, schema: z.ZodType<T>, query?: Query): Promise<T> {
    return this.request('GET', path, { schema, ...(query ? { query } : {}) });
  }

  post<T>(path: string, schema: z.ZodType<T>, body?: Body): Promise<T> {
    return this.request('POST', path, { schema, ...(body ? { body } : {}) });
  }

  delete<T>(path: string, schema: z.ZodType<T>): Promise<T> {
    return this.request('DELETE', path, { schema });
  }

  async request<T>(method: string, path: string, options: RequestOptions<T>): Promise<T> {
    const url = this.urlOf(path, options.query);
    const headers = this.headers(options.auth, 'application/json');
    Object.assign(headers, options.headers);
    let body: string | ReadableStream<Uint8Array> | undefined;
    if (options.body && 'json' in options.body) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body.json);
    } else if (options.body && 'stream' in options.body) {
      headers['content-type'] = options.body.contentType;
      body = options.body.stream;
    } else if (options.body) {
      headers['content-type'] = options.body.contentType;
      body = options.body.text;
    }
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs;
    const context: RequestContext = {
      method,
      path,
      baseUrl: this.options.baseUrl,
      tokenSource: this.options.tokenSource,
    };
    let response: Response;
    let text: string;
    try {
      response = await this.fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        // Fetch sends a stream body only half duplex: the answer comes after it.
        ...(typeof body === 'object' ? { duplex: 'half' } : {}),
        // A redirect would carry the token somewhere the user did not name.
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      } as RequestInit);
      text = await response.text();
    } catch (err) {
      throw networkError(err, this.options.baseUrl, timeoutMs);
    }
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      throw new CliError('invalid', 'redirected', `the server redirects ${method} ${path}`, {
        hint: location
          ? `use the URL it points to (${oneLine(location, 200)}) with --url or OUTPOST_URL`
          : 'check the URL given with --url or OUTPOST_URL',
      });
    }
    if (!response.ok) {
      throw responseError(response.status, response.headers.get('content-type'), text, {
        ...context,
        retryAfter: response.headers.get('retry-after'),
      });
    }
    let value: unknown;
    try {
      value = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw unexpected(context, 'the body is not JSON');
    }
    const parsed = options.schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw unexpected(context, issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : '');
    }
    return parsed.data;
  }

  /**
   * Server-Sent Events from `path` until the server ends the stream or `signal` aborts it
   * (then the iteration just ends). Refusals are the same errors as `request`'s.
   */
  async *events(path: string, query: Query, signal: AbortSignal): AsyncGenerator<ServerEvent> {
    const context: RequestContext = {
      method: 'GET',
      path,
      baseUrl: this.options.baseUrl,
      tokenSource: this.options.tokenSource,
    };
    let response: Response;
    try {
      response = await this.fetch(this.urlOf(path, query), {
        headers: this.headers(true, 'text/event-stream'),
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      if (signal.aborted) return;
      throw networkError(err, this.options.baseUrl, this.options.timeoutMs);
    }
    if (!response.ok || !response.body) {
      throw responseError(
        response.status,
        response.headers.get('content-type'),
        await response.text(),
        {
          ...context,
          retryAfter: response.headers.get('retry-after'),
        },
      );
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const frame = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (frame) yield frame;
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      throw networkError(err, this.options.baseUrl, this.options.timeoutMs);
    }
  }

  private headers(auth: boolean | undefined, accept: string): Record<string, string> {
    const headers: Record<string, string> = { accept };
    if (this.options.userAgent) headers['user-agent'] = this.options.userAgent;
    if (auth !== false && this.options.token) {
      headers.authorization = `Bearer ${this.options.token}`;
    }
    return headers;
  }

  private urlOf(path: string, query: Query | undefined): string {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue;
      if (typeof value === 'object') for (const v of value) search.append(key, v);
      else search.append(key, String(value));
    }
    const qs = search.toString();
    return `${this.options.baseUrl}${path}${qs ? `?${qs}` : ''}`;
  }
}

/** One SSE frame (WHATWG HTML §9.2.6); comments and frames without data are skipped. */
export function parseEvent(frame: string): ServerEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length > 0 ? { event, data: data.join('\n') } : undefined;
}

function unexpected(context: RequestContext, why: string): CliError {
  return new CliError(
    'internal',
    'unexpected_response',
    `the server sent an unexpected answer to ${context.method} ${context.path}${why ? ` (${why})` : ''}`,
    { hint: `check that ${context.baseUrl} is an Outpost ingest service of a matching version` },
  );
}

/** A non-2xx response as one error: problem details when the body is one. */
export function responseError(
  status: number,
  contentType: string | null,
  text: string,
  context: RequestContext,
): CliError {
  let problem: Problem | undefined;
  if (contentType && /[/+]json\b/i.test(contentType)) {
    try {
      const parsed = problemSchema.safeParse(JSON.parse(text));
      if (parsed.success) problem = parsed.data;
    } catch {
      problem = undefined;
    }
  }
  if (!problem?.code) {
    return new CliError(
      status >= 500 ? 'unavailable' : 'invalid',
      `http_${status}`,
      `${context.baseUrl} answered ${context.method} ${context.path} with HTTP ${status}`,
      {
        hint:
          status >= 500
            ? 'the service or a proxy in front of it failed; retry later'
            : 'check that --url or OUTPOST_URL points at an Outpost ingest service',
      },
    );
  }
  return problemError(status, problem, context);
}

const TOKEN_REFUSALS = new Set(['token_invalid', 'token_revoked', 'token_expired']);

/** Maps a problem to the error line a person can act on. */
export function problemError(status: number, problem: Problem, context: RequestContext): CliError {
  const code = problem.code ?? `http_${status}`;
  const detail = oneLine(problem.detail ?? problem.title ?? `HTTP ${status}`);
  const extensions = Object.fromEntries(
    Object.entries(problem).filter(([k]) => !['type', 'title', 'status', 'instance'].includes(k)),
  );
  const make = (kind: CliError['kind'], message: string, hint?: string) =>
    new CliError(kind, code, message, {
      details: { status, ...extensions },
      ...(hint ? { hint } : {}),
    });

  if (TOKEN_REFUSALS.has(code)) {
    return make(
      'unauthenticated',
      `the server refused the token (${code})`,
      context.tokenSource ? tokenHint(context.tokenSource) : 'check OUTPOST_TOKEN or log in again',
    );
  }
  if (code === 'token_missing') {
    return make('unauthenticated', `the server wants an API token (${code})`, LOGIN_HINT);
  }
  if (status === 401) return make('unauthenticated', `${detail} (${code})`);
  if (status === 403) {
    return make(
      'forbidden',
      `${detail} (${code})`,
      'use a token with the needed role; an admin can issue one with `outpost token create`',
    );
  }
  if (code === 'route_not_found') {
    return make(
      'not_found',
      `the server has no ${context.method} ${context.path} (${code})`,
      `check that ${context.baseUrl} is an Outpost ingest service of a matching version`,
    );
  }
  if (status === 429) {
    const after = Number(context.retryAfter);
    return make(
      'rate_limited',
      `${detail} (${code})`,
      Number.isFinite(after) && after > 0 ? `retry in ${Math.ceil(after)} s` : 'retry later',
    );
  }
  if (status >= 500) {
    return make(
      'unavailable',
      `the server failed: ${detail} (${code})`,
      'retry later; if it persists, check the service log',
    );
  }
  const kind = status === 404 ? 'not_found' : status === 409 ? 'conflict' : 'invalid';
  return make(kind, `${detail} (${code})`);
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A request that got no HTTP answer: refused, unresolvable, timed out, bad TLS. */
export function networkError(err: unknown, baseUrl: string, timeoutMs: number): CliError {
  const name = (err as { name?: unknown })?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new CliError(
      'unavailable',
      'timeout',
      `no answer from ${baseUrl} within ${timeoutMs / 1000} s`,
      {
        hint: 'check the network, or allow more time with OUTPOST_TIMEOUT (e.g. 2m)',
        cause: err,
      },
    );
  }
  const code = errorCode(err);
  const reason =
    code === 'ECONNREFUSED'
      ? 'connection refused'
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? 'host not found'
        : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET'
          ? 'the connection was closed'
          : code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
            ? 'no route to the host'
            : code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
              ? 'the connection timed out'
              : code && TLS_CODES.has(code)
                ? `the TLS certificate is not trusted (${code})`
                : oneLine(causeMessage(err));
  const hint =
    code && TLS_CODES.has(code)
      ? "give Node the service's CA with NODE_EXTRA_CA_CERTS=FILE"
      : 'check the URL (--url or OUTPOST_URL) and that the service is running';
  return new CliError('unavailable', 'unreachable', `cannot reach ${baseUrl}: ${reason}`, {
    hint,
    cause: err,
  });
}

function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current; depth++) {
    const { code, errors, cause } = current as {
      code?: unknown;
      errors?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string') return code;
    if (Array.isArray(errors) && errors.length > 0) {
      const inner = errorCode(errors[0]);
      if (inner) return inner;
    }
    current = cause;
  }
  return undefined;
}

function causeMessage(err: unknown): string {
  const cause = (err as { cause?: unknown })?.cause;
  if (cause instanceof Error && cause.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
