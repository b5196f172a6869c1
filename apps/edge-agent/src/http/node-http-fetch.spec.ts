import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_TEXT_BYTES, nodeHttpFetch } from './node-http-fetch.js';

// Real parts: a node:http server on 127.0.0.1 and the connections to it.

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** Resolves when the connection of this request closed. */
  closed: Promise<void>;
}

/** A server answering with `handler` once it read a request; returns its URL and what it saw. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = createServer(async (req, res) => {
    const closed = new Promise<void>((resolve) => req.socket.once('close', () => resolve()));
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    seen.push({
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: Buffer.concat(chunks),
      closed,
    });
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen };
}

/** Headers and a first chunk, then nothing until the connection closes. */
const stalls = (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write('first');
};

describe('nodeHttpFetch', () => {
  it('returns status, headers and body', async () => {
    const { url, seen } = await serve((_req, res) => {
      res.setHeader('x-one', 'a');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end('{"é":1}');
    });
    const res = await nodeHttpFetch(`${url}/path?q=1`, { headers: { 'x-asked': 'yes' } });
    expect(res.status).toBe(201);
    expect(res.ok).toBe(true);
    expect(res.headers.get('X-One')).toBe('a');
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(res.headers.get('x-missing')).toBeNull();
    expect(await res.text()).toBe('{"é":1}');
    expect(seen).toMatchObject([
      { method: 'GET', url: '/path?q=1', headers: { 'x-asked': 'yes' } },
    ]);
  });

  it('sends a body with its content-length', async () => {
    const { url, seen } = await serve((_req, res) => res.end());
    const text = await nodeHttpFetch(url, { method: 'POST', body: 'héllo' });
    await text.text();
    const bytes = await nodeHttpFetch(url, { method: 'PUT', body: new Uint8Array([1, 2, 3]) });
    await bytes.text();
    expect(seen.map((s) => [s.method, s.headers['content-length'], s.body])).toEqual([
      ['POST', '6', Buffer.from('héllo')],
      ['PUT', '3', Buffer.from([1, 2, 3])],
    ]);
    expect(seen[0]!.headers['transfer-encoding']).toBeUndefined();
  });

  it('stops reading the body when the signal aborts, and closes the connection', async () => {
    const { url, seen } = await serve(stalls);
    const abort = new AbortController();
    const res = await nodeHttpFetch(url, { signal: abort.signal });
    const chunks = res.body![Symbol.asyncIterator]();
    expect(Buffer.from((await chunks.next()).value as Uint8Array).toString()).toBe('first');
    const reason = new Error('stopped');
    abort.abort(reason);
    await expect(chunks.next()).rejects.toBe(reason);
    await seen[0]!.closed;
  });

  it('rejects with the signal reason when it aborted before or during the request', async () => {
    const { url, seen } = await serve(() => undefined);
    const before = new AbortController();
    before.abort();
    await expect(nodeHttpFetch(url, { signal: before.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
    await expect(nodeHttpFetch(url, { signal: AbortSignal.timeout(100) })).rejects.toMatchObject({
      name: 'TimeoutError',
    });
    expect(seen).toHaveLength(1);
    await seen[0]!.closed;
  });

  it('times out while the body is read', async () => {
    const { url } = await serve(stalls);
    const res = await nodeHttpFetch(url, { signal: AbortSignal.timeout(200) });
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('does not follow a redirect', async () => {
    const { url, seen } = await serve((_req, res) => {
      res.writeHead(302, { location: '/elsewhere' });
      res.end('moved');
    });
    const res = await nodeHttpFetch(url);
    expect(res.status).toBe(302);
    expect(res.ok).toBe(false);
    expect(res.headers.get('location')).toBe('/elsewhere');
    expect(await res.text()).toBe('moved');
    expect(seen).toHaveLength(1);
  });

  it('refuses to read more text than its bound', async () => {
    const { url, seen } = await serve((_req, res) => {
      res.writeHead(200);
      // Sent in pieces and never ended: only the bound ends the reading.
      const piece = Buffer.alloc(64 * 1024, 'a');
      for (let sent = 0; sent <= DEFAULT_MAX_TEXT_BYTES; sent += piece.length) res.write(piece);
    });
    const res = await nodeHttpFetch(url);
    await expect(res.text()).rejects.toThrow(`longer than ${DEFAULT_MAX_TEXT_BYTES} bytes`);
    await seen[0]!.closed;
    const small = await nodeHttpFetch(url, { maxTextBytes: 10 });
    await expect(small.text()).rejects.toThrow('longer than 10 bytes');
  });

  it('closes the connection when the body is cancelled', async () => {
    const { url, seen } = await serve(stalls);
    const res = await nodeHttpFetch(url);
    await res.body!.cancel();
    await seen[0]!.closed;
  });

  it('rejects when nothing listens, and for other protocols', async () => {
    const { url } = await serve(() => undefined);
    const s = servers.pop()!;
    await new Promise((resolve) => s.close(resolve));
    await expect(nodeHttpFetch(url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(nodeHttpFetch('ftp://127.0.0.1/x')).rejects.toThrow(/only http: and https:/);
  });
});
