import { backoffDelay, STREAM_BACKOFF } from './backoff.js';
import { SseParser } from './sse-parser.js';

/**
 * The ingest's event stream (`GET /api/v1/stream`) over fetch() streaming, so the API token
 * travels in the Authorization header (EventSource cannot send headers, and the token must
 * never be in a URL). Reconnects by itself with backoff and jitter; a connection that stays
 * silent past the server's heartbeat is treated as lost.
 */
export type StreamState =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'open' }
  | { kind: 'waiting'; attempt: number; retryAt: number; reason: string }
  /** The server refused the request itself (unknown type, no such route): no retry. */
  | { kind: 'unavailable'; status: number; reason: string }
  | { kind: 'closed' };

export interface StreamHandlers {
  onEvent(event: string, data: unknown): void;
  onState?(state: StreamState): void;
  /** The stream is open; `resumed` when it replaces a lost one (events may have been missed). */
  onOpen?(resumed: boolean): void;
  /** 401: the token is no longer accepted. */
  onUnauthorized?(): void;
}

export interface StreamDeps {
  fetch: typeof fetch;
  random: () => number;
  now: () => number;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
}

const browserDeps = (): StreamDeps => ({
  fetch: (...args) => globalThis.fetch(...args),
  random: Math.random,
  now: Date.now,
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as number),
});

/** The server sends a comment every 15 s; three missed beats mean the connection is gone. */
export const SILENCE_LIMIT_MS = 45_000;
/** A connection that lasted this long resets the backoff. */
const STABLE_MS = 10_000;

export interface StreamQuery {
  types: readonly string[];
  device?: readonly string[];
  metric?: readonly string[];
}

export function streamPath(q: StreamQuery): string {
  const params = new URLSearchParams();
  for (const d of q.device ?? []) params.append('device', d);
  for (const m of q.metric ?? []) params.append('metric', m);
  // Repeated, not comma-joined: the stream's query schema takes one type per value.
  for (const t of q.types) params.append('types', t);
  return `/api/v1/stream?${params.toString()}`;
}

export class LiveStream {
  private attempt = 0;
  private opened = false;
  private stopped = false;
  private controller: AbortController | undefined;
  private retryTimer: unknown;
  private silenceTimer: unknown;
  private serverRetryMs: number | undefined;

  constructor(
    private readonly path: string,
    private readonly token: () => string | null,
    private readonly handlers: StreamHandlers,
    private readonly deps: StreamDeps = browserDeps(),
  ) {}

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.deps.clearTimeout(this.retryTimer);
    this.deps.clearTimeout(this.silenceTimer);
    this.controller?.abort();
    this.handlers.onState?.({ kind: 'closed' });
  }

  private async connect(): Promise<void> {
    const token = this.token();
    if (!token || this.stopped) return;
    const controller = new AbortController();
    this.controller = controller;
    this.handlers.onState?.({ kind: 'connecting', attempt: this.attempt });
    let openedAt: number | undefined;
    let reason = 'connection lost';
    try {
      const res = await this.deps.fetch(this.path, {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
        cache: 'no-store',
        signal: controller.signal,
      });
      if (res.status === 401) {
        this.stopped = true;
        this.handlers.onUnauthorized?.();
        return;
      }
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        this.stopped = true;
        this.handlers.onState?.({
          kind: 'unavailable',
          status: res.status,
          reason: await problemDetail(res),
        });
        return;
      }
      if (!res.ok || !res.body) {
        reason = `server answered ${res.status}`;
        throw new Error(reason);
      }
      openedAt = this.deps.now();
      this.handlers.onState?.({ kind: 'open' });
      this.handlers.onOpen?.(this.opened);
      this.opened = true;
      await this.read(res.body, controller);
    } catch (err) {
      if (this.stopped) return;
      if (!(err instanceof DOMException && err.name === 'AbortError') && err instanceof Error) {
        reason = err.message || reason;
      }
    } finally {
      this.deps.clearTimeout(this.silenceTimer);
    }
    if (this.stopped) return;
    if (openedAt !== undefined && this.deps.now() - openedAt >= STABLE_MS) this.attempt = 0;
    const delay = backoffDelay(
      this.attempt,
      { ...STREAM_BACKOFF, baseMs: this.serverRetryMs ?? STREAM_BACKOFF.baseMs },
      this.deps.random,
    );
    this.attempt++;
    this.handlers.onState?.({
      kind: 'waiting',
      attempt: this.attempt,
      retryAt: this.deps.now() + delay,
      reason,
    });
    this.retryTimer = this.deps.setTimeout(() => void this.connect(), delay);
  }

  private async read(body: ReadableStream<Uint8Array>, controller: AbortController) {
    const parser = new SseParser();
    const decoder = new TextDecoder();
    const reader = body.getReader();
    const armSilence = () => {
      this.deps.clearTimeout(this.silenceTimer);
      this.silenceTimer = this.deps.setTimeout(() => controller.abort(), SILENCE_LIMIT_MS);
    };
    armSilence();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        armSilence();
        const events = parser.push(decoder.decode(value, { stream: true }));
        if (parser.retryMs !== undefined) this.serverRetryMs = parser.retryMs;
        for (const e of events) {
          let data: unknown;
          try {
            data = JSON.parse(e.data);
          } catch {
            continue;
          }
          this.handlers.onEvent(e.event, data);
        }
      }
    } finally {
      reader.releaseLock();
    }
  }
}

async function problemDetail(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { detail?: unknown };
    if (typeof body.detail === 'string') return body.detail;
  } catch {
    // not problem+json
  }
  return `server answered ${res.status}`;
}
