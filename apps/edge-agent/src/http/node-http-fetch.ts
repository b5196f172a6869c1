import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * The agent's HTTP client: the part of `fetch` it uses, over node:http. The global `fetch`
 * loads undici and compiles its llhttp WebAssembly on first use, about 19 MB of resident
 * memory for the life of the process, where node:http costs about 3 MB; the agent's clock
 * probe asks the ingest every minute, so the cost would always be paid.
 */
export interface HttpRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** Aborts the request, and the reading of the body after it arrived. */
  signal?: AbortSignal;
  /** Most bytes `text()` reads before it rejects; default 1 MiB. */
  maxTextBytes?: number;
}

/** A structural subset of the web `Response`, so that a `Response` serves as one in tests. */
export interface HttpResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** The body's chunks; `cancel()` drops the rest and the connection. */
  readonly body: (AsyncIterable<Uint8Array> & { cancel(): Promise<void> }) | null;
  /** The body as UTF-8. */
  text(): Promise<string>;
}

export type HttpFetch = (url: string, init?: HttpRequestInit) => Promise<HttpResponse>;

export const DEFAULT_MAX_TEXT_BYTES = 1024 * 1024;

/**
 * `http:` and `https:` only. Redirects are never followed: a 3xx is an answer like any other,
 * so a request never leaves the origin it was sent to.
 */
export const nodeHttpFetch: HttpFetch = (url, init = {}) =>
  new Promise<HttpResponse>((resolve, reject) => {
    const target = new URL(url);
    const request =
      target.protocol === 'http:'
        ? httpRequest
        : target.protocol === 'https:'
          ? httpsRequest
          : undefined;
    if (request === undefined) {
      throw new TypeError(`cannot request ${url}: only http: and https: URLs are supported`);
    }
    const { signal } = init;
    signal?.throwIfAborted();
    const body = typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
    const headers = { ...init.headers };
    if (body !== undefined) headers['content-length'] = String(body.byteLength);
    // A connection per request, closed after it: the agent's requests are a minute or more
    // apart, so keeping one alive saves nothing, and a kept socket that the server closed in
    // the meantime would fail the next request.
    const req = request(target, { method: init.method ?? 'GET', headers, agent: false });
    let res: IncomingMessage | undefined;
    const onAbort = () => {
      req.destroy(signal?.reason);
      res?.destroy(signal?.reason);
    };
    const done = () => signal?.removeEventListener('abort', onAbort);
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => {
      done();
      reject(err);
    });
    req.on('response', (response) => {
      res = response;
      // A broken body reaches whoever reads it; a body nobody reads must not crash the process.
      response.on('error', () => undefined);
      response.on('close', done);
      resolve(wrap(response, url, init.maxTextBytes ?? DEFAULT_MAX_TEXT_BYTES));
    });
    req.end(body);
  });

function wrap(res: IncomingMessage, url: string, maxTextBytes: number): HttpResponse {
  const status = res.statusCode ?? 0;
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: {
      get(name) {
        const value = res.headers[name.toLowerCase()];
        if (value === undefined) return null;
        return Array.isArray(value) ? value.join(', ') : value;
      },
    },
    body: {
      [Symbol.asyncIterator]: () => res[Symbol.asyncIterator](),
      cancel: async () => {
        res.destroy();
      },
    },
    async text() {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > maxTextBytes) {
          res.destroy();
          throw new Error(`the answer from ${url} is longer than ${maxTextBytes} bytes`);
        }
        chunks.push(chunk);
      }
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
