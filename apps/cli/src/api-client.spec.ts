import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ApiClient,
  networkError,
  parseEvent,
  problemError,
  type RequestContext,
} from './api-client.js';
import { CliError, errorLine } from './errors.js';

interface Call {
  url: string;
  init: RequestInit;
}

/** A fetch that answers from a script, in order; any call beyond it fails the test. */
function scriptedFetch(...answers: (Response | Error)[]) {
  const calls: Call[] = [];
  const fetch = async (url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const answer = answers.shift();
    if (answer === undefined) throw new Error(`unexpected request ${String(url)}`);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { calls, fetch: fetch as typeof globalThis.fetch };
}

const problem = (
  status: number,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
) =>
  new Response(JSON.stringify({ status, ...body }), {
    status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  });

const ok = (body: unknown) =>
  new Response(JSON.stringify(body), {
    status: 200,
    headers: { 'content-type': 'application/json' },
  });

const base = 'http://ingest.test:8080';
const client = (fetch: typeof globalThis.fetch, token = 'tok.en.x') =>
  new ApiClient({ baseUrl: base, token, tokenSource: 'env', timeoutMs: 5000, fetch });

async function failure(promise: Promise<unknown>): Promise<CliError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CliError);
  return err as CliError;
}

describe('ApiClient requests', () => {
  it('sends the bearer token, JSON bodies and repeated query parameters', async () => {
    const { calls, fetch } = scriptedFetch(ok({ n: 1 }), ok({ n: 2 }));
    const api = client(fetch);
    await api.get('/api/v1/devices', z.object({ n: z.number() }), {
      tag: ['site=a b', 'line=2'],
      limit: 5,
      kind: undefined,
    });
    await api.post('/api/v1/enrollments', z.object({ n: z.number() }), {
      json: { deviceId: 'd1' },
    });

    expect(calls[0]!.url).toBe(`${base}/api/v1/devices?tag=site%3Da+b&tag=line%3D2&limit=5`);
    const headers = calls[0]!.init.headers as Record<string, string>;
    expect(headers.authorization).toBe('Bearer tok.en.x');
    expect(calls[0]!.init.redirect).toBe('manual');
    expect(calls[1]!.init.method).toBe('POST');
    expect(calls[1]!.init.body).toBe('{"deviceId":"d1"}');
    expect((calls[1]!.init.headers as Record<string, string>)['content-type']).toBe(
      'application/json',
    );
  });

  it('leaves the token out of requests authorized by their body', async () => {
    const { calls, fetch } = scriptedFetch(ok({}));
    await client(fetch).request('POST', '/api/v1/enroll', {
      schema: z.object({}),
      auth: false,
      body: { text: 'a,b', contentType: 'text/csv' },
    });
    const headers = calls[0]!.init.headers as Record<string, string>;
    expect(headers.authorization).toBeUndefined();
    expect(headers['content-type']).toBe('text/csv');
  });

  it('turns problem details into one CliError with the code and detail', async () => {
    const { fetch } = scriptedFetch(
      problem(404, { code: 'device_not_found', detail: 'device "x" does not exist', id: 'x' }),
    );
    const err = await failure(client(fetch).get('/api/v1/devices/x', z.unknown()));
    expect(err.code).toBe('device_not_found');
    expect(err.kind).toBe('not_found');
    expect(err.details).toMatchObject({ status: 404, id: 'x' });
    expect(errorLine(err)).toBe('error: device "x" does not exist (device_not_found)');
  });

  it('says which server answered with something that is not problem details', async () => {
    const { fetch } = scriptedFetch(
      new Response('<html>bad gateway</html>', {
        status: 502,
        headers: { 'content-type': 'text/html' },
      }),
    );
    const err = await failure(client(fetch).get('/api/v1/devices', z.unknown()));
    expect(errorLine(err)).toBe(
      `error: ${base} answered GET /api/v1/devices with HTTP 502: the service or a proxy in front of it failed; retry later`,
    );
  });

  it('refuses to follow a redirect that would carry the token elsewhere', async () => {
    const { calls, fetch } = scriptedFetch(
      new Response(null, { status: 301, headers: { location: 'https://elsewhere.test/' } }),
    );
    const err = await failure(client(fetch).get('/api/v1/devices', z.unknown()));
    expect(calls).toHaveLength(1);
    expect(err.code).toBe('redirected');
    expect(errorLine(err)).toContain('https://elsewhere.test/');
  });

  it('checks the answer against the expected shape', async () => {
    const { fetch } = scriptedFetch(ok({ items: 'no' }));
    const err = await failure(
      client(fetch).get('/api/v1/devices', z.object({ items: z.array(z.unknown()) })),
    );
    expect(err.code).toBe('unexpected_response');
    expect(err.message).toContain('items:');
  });

  it('maps a refused connection to "cannot reach"', async () => {
    const refused = Object.assign(new TypeError('fetch failed'), {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
    });
    const { fetch } = scriptedFetch(refused);
    const err = await failure(client(fetch).get('/api/v1/devices', z.unknown()));
    expect(err.exitCode).toBe(1);
    expect(errorLine(err)).toBe(
      `error: cannot reach ${base}: connection refused: check the URL (--url or OUTPOST_URL) and that the service is running`,
    );
  });

  it('gives up after the timeout', async () => {
    const fetch = ((_url: string, init: RequestInit) =>
      new Promise((_resolve, reject) => {
        init.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      })) as unknown as typeof globalThis.fetch;
    const api = new ApiClient({ baseUrl: base, timeoutMs: 50, fetch });
    const err = await failure(api.get('/api/v1/devices', z.unknown()));
    expect(err.code).toBe('timeout');
    expect(errorLine(err)).toMatch(
      /^error: no answer from http:\/\/ingest\.test:8080 within 0\.05 s: /,
    );
  });
});

describe('problemError', () => {
  const context: RequestContext = { method: 'GET', path: '/api/v1/devices', baseUrl: base };
  const line = (
    status: number,
    body: Record<string, unknown>,
    extra: Partial<RequestContext> = {},
  ) => errorLine(problemError(status, body, { ...context, ...extra }));

  it.each([
    ['env', 'check OUTPOST_TOKEN or log in again'],
    ['flag', 'check the --token value'],
    ['profile', 'log in again with `outpost login --url URL --token TOKEN`'],
  ] as const)('points at the token source (%s) when the token is refused', (source, hint) => {
    expect(line(401, { code: 'token_invalid', detail: 'x' }, { tokenSource: source })).toBe(
      `error: the server refused the token (token_invalid): ${hint}`,
    );
  });

  it('covers revoked and expired tokens the same way', () => {
    expect(line(401, { code: 'token_revoked' }, { tokenSource: 'env' })).toMatch(
      /^error: the server refused the token \(token_revoked\): /,
    );
    expect(line(401, { code: 'token_expired' })).toBe(
      'error: the server refused the token (token_expired): check OUTPOST_TOKEN or log in again',
    );
  });

  it('says to log in when no token was sent', () => {
    expect(line(401, { code: 'token_missing', detail: 'an API token is required' })).toBe(
      'error: the server wants an API token (token_missing): run `outpost login --url URL --token TOKEN` or set OUTPOST_URL and OUTPOST_TOKEN',
    );
  });

  it('says a role is missing on 403', () => {
    expect(line(403, { code: 'forbidden', detail: 'this needs the technician role' })).toBe(
      'error: this needs the technician role (forbidden): use a token with the needed role; an admin can issue one with `outpost token create`',
    );
  });

  it('tells when to retry after 429', () => {
    expect(line(429, { code: 'rate_limited', detail: 'too many' }, { retryAfter: '12' })).toBe(
      'error: too many (rate_limited): retry in 12 s',
    );
  });

  it('suspects the URL when the route does not exist', () => {
    expect(line(404, { code: 'route_not_found', detail: 'no such route' })).toBe(
      `error: the server has no GET /api/v1/devices (route_not_found): check that ${base} is an Outpost ingest service of a matching version`,
    );
  });

  it('reports server failures as such', () => {
    const err = problemError(500, { code: 'internal', detail: 'internal error' }, context);
    expect(err.kind).toBe('unavailable');
    expect(errorLine(err)).toBe(
      'error: the server failed: internal error (internal): retry later; if it persists, check the service log',
    );
  });

  it('keeps problem extensions such as import errors in the details', () => {
    const err = problemError(
      400,
      {
        code: 'import_invalid',
        detail: 'import refused',
        errors: [{ line: 3, message: 'x' }],
        errorCount: 1,
      },
      context,
    );
    expect(err.kind).toBe('invalid');
    expect(err.details).toMatchObject({ errors: [{ line: 3, message: 'x' }], errorCount: 1 });
  });

  it('maps 409 to a conflict', () => {
    expect(problemError(409, { code: 'enrollment_used', detail: 'used' }, context).kind).toBe(
      'conflict',
    );
  });
});

describe('networkError', () => {
  const withCode = (code: string) =>
    Object.assign(new TypeError('fetch failed'), {
      cause: Object.assign(new Error(code), { code }),
    });

  it.each([
    ['ENOTFOUND', 'host not found'],
    ['ECONNRESET', 'the connection was closed'],
    ['EHOSTUNREACH', 'no route to the host'],
    [
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'the TLS certificate is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)',
    ],
  ])('explains %s', (code, reason) => {
    expect(networkError(withCode(code), base, 1000).message).toBe(
      `cannot reach ${base}: ${reason}`,
    );
  });

  it('finds the code inside an AggregateError (several addresses tried)', () => {
    const err = Object.assign(new TypeError('fetch failed'), {
      cause: new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]),
    });
    expect(networkError(err, base, 1000).message).toBe(`cannot reach ${base}: connection refused`);
  });

  it('suggests NODE_EXTRA_CA_CERTS for an untrusted certificate', () => {
    expect(networkError(withCode('SELF_SIGNED_CERT_IN_CHAIN'), base, 1000).hint).toContain(
      'NODE_EXTRA_CA_CERTS',
    );
  });
});

describe('ApiClient.events', () => {
  it('yields Server-Sent Events split across chunks, skipping comments', async () => {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of [
          'retry: 3000\n\n: ping\n\nid: 1\nevent: roll',
          'outs\ndata: {"a":1}\n\n',
          'data: x\ndata: y\n\n',
        ]) {
          controller.enqueue(encoder.encode(part));
        }
        controller.close();
      },
    });
    const { calls, fetch } = scriptedFetch(
      new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }),
    );
    const client = new ApiClient({ baseUrl: base, token: 'tok', timeoutMs: 1000, fetch });
    const events = [];
    for await (const e of client.events(
      '/api/v1/stream',
      { types: 'rollouts' },
      new AbortController().signal,
    )) {
      events.push(e);
    }
    expect(events).toEqual([
      { event: 'rollouts', data: '{"a":1}' },
      { event: 'message', data: 'x\ny' },
    ]);
    expect(calls[0]!.url).toBe(`${base}/api/v1/stream?types=rollouts`);
    expect((calls[0]!.init.headers as Record<string, string>).authorization).toBe('Bearer tok');
  });

  it('reports a refusal like any request', async () => {
    const { fetch } = scriptedFetch(problem(403, { code: 'role_required', detail: 'no' }));
    const client = new ApiClient({ baseUrl: base, token: 'tok', timeoutMs: 1000, fetch });
    const events = client.events('/api/v1/stream', {}, new AbortController().signal);
    await expect(events.next()).rejects.toMatchObject({ code: 'role_required' });
  });

  it('parses single frames', () => {
    expect(parseEvent(': only a comment')).toBeUndefined();
    expect(parseEvent('event: a\ndata:no-space')).toEqual({ event: 'a', data: 'no-space' });
  });
});

describe('ApiClient.request with a stream body', () => {
  it('sends it half duplex with the extra headers', async () => {
    const { calls, fetch } = scriptedFetch(ok({ id: 'fw-1' }));
    const client = new ApiClient({ baseUrl: base, token: 'tok', timeoutMs: 1000, fetch });
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array([1, 2, 3]));
        c.close();
      },
    });
    await client.request('POST', '/api/v1/firmware', {
      schema: z.object({ id: z.string() }),
      body: { stream, contentType: 'application/octet-stream' },
      headers: { 'x-outpost-manifest': 'a.b.c' },
    });
    const init = calls[0]!.init as RequestInit & { duplex?: string };
    expect(init.duplex).toBe('half');
    expect(init.body).toBe(stream);
    expect(init.headers).toMatchObject({
      'content-type': 'application/octet-stream',
      'x-outpost-manifest': 'a.b.c',
    });
  });
});
