import { describe, expect, it } from 'vitest';
import {
  LiveStream,
  SILENCE_LIMIT_MS,
  type StreamDeps,
  type StreamState,
  streamPath,
} from './live-stream.js';

/** A fake clock and timers: `advance` runs due timers in order. */
class FakeTime {
  now = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.nextId++;
    this.timers.push({ at: this.now + ms, fn, id });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.timers = this.timers.filter((t) => t.id !== id);
  };
  async advance(ms: number) {
    const end = this.now + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const t = this.timers[0];
      if (!t || t.at > end) break;
      this.timers.shift();
      this.now = t.at;
      t.fn();
      await flush();
    }
    this.now = end;
    await flush();
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
};

/** A server whose answers the test scripts; each connection's body is a controllable stream. */
class FakeServer {
  requests: { url: string; headers: Record<string, string> }[] = [];
  answers: (() => Response)[] = [];
  bodies: ReadableStreamDefaultController<Uint8Array>[] = [];

  fetch = (async (url: string, init: RequestInit) => {
    this.requests.push({ url, headers: init.headers as Record<string, string> });
    const answer = this.answers.shift();
    if (!answer) throw new TypeError('network down');
    const res = answer();
    init.signal?.addEventListener('abort', () => {
      try {
        this.bodies.at(-1)?.error(new DOMException('aborted', 'AbortError'));
      } catch {
        // already closed
      }
    });
    return res;
  }) as unknown as typeof fetch;

  stream(): Response {
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.bodies.push(c);
      },
    });
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  }

  send(text: string) {
    this.bodies.at(-1)!.enqueue(new TextEncoder().encode(text));
  }
}

function setup() {
  const time = new FakeTime();
  const server = new FakeServer();
  const events: [string, unknown][] = [];
  const states: StreamState[] = [];
  const opens: boolean[] = [];
  let unauthorized = 0;
  const deps: StreamDeps = {
    fetch: server.fetch,
    random: () => 0.5,
    now: () => time.now,
    setTimeout: time.setTimeout,
    clearTimeout: time.clearTimeout,
  };
  const stream = new LiveStream(
    streamPath({ types: ['readings', 'status'], device: ['th-1'] }),
    () => 'secret-token',
    {
      onEvent: (e, d) => events.push([e, d]),
      onState: (s) => states.push(s),
      onOpen: (resumed) => opens.push(resumed),
      onUnauthorized: () => unauthorized++,
    },
    deps,
  );
  return { time, server, events, states, opens, stream, unauthorized: () => unauthorized };
}

describe('LiveStream', () => {
  it('sends the token in a header, never in the URL, and delivers parsed events', async () => {
    const t = setup();
    t.server.answers.push(() => t.server.stream());
    t.stream.start();
    await flush();
    expect(t.server.requests[0]!.url).toBe(
      '/api/v1/stream?device=th-1&types=readings&types=status',
    );
    expect(t.server.requests[0]!.url).not.toContain('secret-token');
    expect(t.server.requests[0]!.headers.authorization).toBe('Bearer secret-token');
    t.server.send('event: status\ndata: {"deviceId":"th-1","online":true}\n\n');
    await flush();
    expect(t.events).toEqual([['status', { deviceId: 'th-1', online: true }]]);
    expect(t.opens).toEqual([false]);
    t.stream.stop();
  });

  it('reconnects with growing delays and says the new stream resumes an old one', async () => {
    const t = setup();
    t.server.answers.push(() => t.server.stream());
    t.stream.start();
    await flush();
    t.server.bodies[0]!.close();
    await flush();
    expect(t.states.at(-1)).toMatchObject({ kind: 'waiting', attempt: 1 });
    // random 0.5: 750 ms for the first retry; the network is down for it.
    await t.time.advance(749);
    expect(t.server.requests).toHaveLength(1);
    await t.time.advance(1);
    expect(t.server.requests).toHaveLength(2);
    expect(t.states.at(-1)).toMatchObject({ kind: 'waiting', attempt: 2 });
    t.server.answers.push(() => t.server.stream());
    await t.time.advance(1500);
    expect(t.server.requests).toHaveLength(3);
    expect(t.states.at(-1)).toEqual({ kind: 'open' });
    expect(t.opens).toEqual([false, true]);
    t.stream.stop();
  });

  it('treats a stream silent past the heartbeats as lost', async () => {
    const t = setup();
    t.server.answers.push(() => t.server.stream());
    t.stream.start();
    await flush();
    await t.time.advance(SILENCE_LIMIT_MS - 1000);
    t.server.send(': ping\n\n');
    await flush();
    await t.time.advance(SILENCE_LIMIT_MS - 1000);
    expect(t.states.at(-1)).toEqual({ kind: 'open' });
    await t.time.advance(1000);
    expect(t.states.at(-1)).toMatchObject({ kind: 'waiting' });
    t.stream.stop();
  });

  it('stops on 401 and on a request the server refuses, without retrying', async () => {
    const t = setup();
    t.server.answers.push(() => new Response('{}', { status: 401 }));
    t.stream.start();
    await flush();
    expect(t.unauthorized()).toBe(1);
    await t.time.advance(60_000);
    expect(t.server.requests).toHaveLength(1);

    const u = setup();
    u.server.answers.push(
      () => new Response(JSON.stringify({ detail: 'types: invalid option' }), { status: 400 }),
    );
    u.stream.start();
    await flush();
    expect(u.states.at(-1)).toEqual({
      kind: 'unavailable',
      status: 400,
      reason: 'types: invalid option',
    });
    await u.time.advance(60_000);
    expect(u.server.requests).toHaveLength(1);
  });

  it('retries a server error', async () => {
    const t = setup();
    t.server.answers.push(() => new Response('', { status: 503 }));
    t.stream.start();
    await flush();
    expect(t.states.at(-1)).toMatchObject({ kind: 'waiting', reason: 'server answered 503' });
    t.stream.stop();
  });
});
