import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FakeClock, fakeClock } from '@outpost/test-kit/clock';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DurableOutbox } from './durable-outbox.js';
import { OutboxWriter, type OutboxWriterOptions } from './outbox-writer.js';
import {
  type LatestRow,
  type SeriesRow,
  StoreRefused,
  StoreUnavailable,
  type TelemetryPoint,
  type TelemetryStore,
} from './telemetry-store.js';

// Real: the durable outbox on a SQLite file. Fake: the store (strict: every write must be
// scripted, anything else is recorded as unexpected and fails the test), clock and random.

type WriteHandler = (points: readonly TelemetryPoint[]) => Promise<void>;

class StrictFakeStore implements TelemetryStore {
  /** The publishers of each write, e.g. `['a', 'b']` for a write of batches a and b. */
  readonly writes: string[][] = [];
  readonly unexpected: string[] = [];
  private readonly script: WriteHandler[] = [];

  /** Queues answers to the next writes, in order. */
  next(...handlers: WriteHandler[]): void {
    this.script.push(...handlers);
  }

  async write(points: readonly TelemetryPoint[]): Promise<void> {
    this.writes.push([...new Set(points.map((p) => p.device))]);
    const handler = this.script.shift();
    if (handler === undefined) {
      this.unexpected.push(`write of ${points.length} points`);
      throw new Error('unexpected write');
    }
    return handler(points);
  }

  async query(): Promise<SeriesRow[]> {
    this.unexpected.push('query');
    return [];
  }
  async latest(): Promise<LatestRow[]> {
    this.unexpected.push('latest');
    return [];
  }
  async ping(): Promise<void> {
    this.unexpected.push('ping');
  }
  async close(): Promise<void> {
    this.unexpected.push('close');
  }
}

const ok: WriteHandler = async () => {};
const unavailable =
  (retryAfterS?: number, code?: 'store_misconfigured'): WriteHandler =>
  async () => {
    throw new StoreUnavailable('write answered 503: overloaded', retryAfterS, code ? { code } : {});
  };
const refused =
  (message = 'write answered 400: partial write: field type conflict'): WriteHandler =>
  async () => {
    throw new StoreRefused(message);
  };
/** Refuses any write holding a point of device `bad`. */
const refuseBad: WriteHandler = async (points) => {
  if (points.some((p) => p.device === 'bad')) throw new StoreRefused('bad line from bad');
};

const dir = mkdtempSync(join(tmpdir(), 'outpost-writer-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('OutboxWriter with a fake store', () => {
  let outbox: DurableOutbox;
  let store: StrictFakeStore;
  let clock: FakeClock;
  let writer: OutboxWriter;
  let jitter: number;

  const make = (options: Partial<OutboxWriterOptions> = {}) =>
    new OutboxWriter({
      outbox,
      store,
      clock,
      random: () => jitter,
      logger: pino({ level: 'silent' }),
      minBackoffMs: 100,
      maxBackoffMs: 1_000,
      misconfiguredBackoffMs: 30_000,
      ...options,
    });
  const accept = (device: string, count = 100) =>
    outbox.accept({
      publisher: device,
      points: Array.from({ length: count }, (_, i) => ({
        device,
        metric: 'temp',
        timeMs: 1_700_000_000_000 + i,
        value: i,
        tags: {},
      })),
    });
  const pending = () => outbox.stats().pendingBatches;

  beforeEach(() => {
    clock = fakeClock(1_700_000_000_000);
    outbox = new DurableOutbox({ path: join(dir, `writer-${++n}.db`), clock });
    store = new StrictFakeStore();
    jitter = 0.5;
    writer = make();
  });
  afterEach(async () => {
    await writer.stop();
    await outbox.close();
    expect(store.unexpected).toEqual([]);
  });

  it('writes pending batches in chunks of maxPointsPerWrite and removes them', async () => {
    writer = make({ maxPointsPerWrite: 250 });
    for (const d of ['a', 'b', 'c', 'd', 'e']) await accept(d);
    store.next(ok, ok, ok);
    expect(await writer.drainOnce()).toEqual({
      outcome: 'written',
      batches: 2,
      points: 200,
      quarantined: 0,
    });
    expect(await writer.drainOnce()).toMatchObject({ outcome: 'written', batches: 2 });
    expect(await writer.drainOnce()).toMatchObject({ outcome: 'written', batches: 1 });
    expect(await writer.drainOnce()).toEqual({ outcome: 'idle' });
    expect(store.writes).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    expect(pending()).toBe(0);
  });

  it('removes nothing before the store confirmed the write', async () => {
    await accept('a');
    let confirm!: () => void;
    store.next(() => new Promise<void>((resolve) => (confirm = resolve)));
    const step = writer.drainOnce();
    await vi.waitFor(() => expect(store.writes).toHaveLength(1));
    expect(pending()).toBe(1);
    confirm();
    expect(await step).toMatchObject({ outcome: 'written', batches: 1 });
    expect(pending()).toBe(0);
  });

  it('keeps everything and backs off exponentially with full jitter on StoreUnavailable', async () => {
    await accept('a');
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      store.next(unavailable());
      const result = await writer.drainOnce();
      expect(result).toMatchObject({
        outcome: 'failed',
        batches: 0,
        error: { code: 'store_unavailable' },
      });
      const retryInMs = (result as { retryInMs: number }).retryInMs;
      delays.push(retryInMs);
      // Not before the backoff is over: no write is attempted (the strict store would see it).
      clock.advance(retryInMs - 1);
      expect(await writer.drainOnce()).toEqual({ outcome: 'waiting', retryInMs: 1 });
      clock.advance(1);
    }
    // Half of min(1000, 100·2^k): the jitter is the injected random.
    expect(delays).toEqual([50, 100, 200, 400, 500, 500]);
    expect(pending()).toBe(1);
    store.next(ok);
    expect(await writer.drainOnce()).toMatchObject({ outcome: 'written', batches: 1 });

    // Success resets the backoff; the jitter spans the whole range.
    await accept('b');
    jitter = 0.999;
    store.next(unavailable());
    expect(await writer.drainOnce()).toMatchObject({ outcome: 'failed', retryInMs: 99 });
  });

  it('waits at least Retry-After (seconds), capped by maxRetryAfterMs', async () => {
    writer = make({ maxRetryAfterMs: 60_000 });
    await accept('a');
    store.next(unavailable(7));
    expect(await writer.drainOnce()).toMatchObject({ outcome: 'failed', retryInMs: 7_000 });
    clock.advance(6_999);
    expect(await writer.drainOnce()).toEqual({ outcome: 'waiting', retryInMs: 1 });
    clock.advance(1);
    store.next(unavailable(3_600));
    expect(await writer.drainOnce()).toMatchObject({ outcome: 'failed', retryInMs: 60_000 });
    clock.advance(60_000);
    store.next(ok);
    expect(await writer.drainOnce()).toMatchObject({ outcome: 'written' });
  });

  it('retries slowly while the store says it is misconfigured, keeping the data', async () => {
    await accept('a');
    store.next(unavailable(undefined, 'store_misconfigured'));
    expect(await writer.drainOnce()).toMatchObject({
      outcome: 'failed',
      retryInMs: 30_000,
      error: { code: 'store_misconfigured' },
    });
    expect(pending()).toBe(1);
  });

  it('treats an unexpected store error as unavailable', async () => {
    await accept('a');
    store.next(async () => {
      throw new TypeError('socket hang up');
    });
    expect(await writer.drainOnce()).toMatchObject({
      outcome: 'failed',
      error: { code: 'store_unavailable', message: /socket hang up/ },
    });
    expect(pending()).toBe(1);
  });

  it('isolates a refused batch, quarantines it with the reason and writes the others', async () => {
    for (const d of ['a', 'bad', 'c']) await accept(d);
    store.next(refuseBad, refuseBad, refuseBad, refuseBad);
    expect(await writer.drainOnce()).toEqual({
      outcome: 'written',
      batches: 2,
      points: 200,
      quarantined: 1,
    });
    expect(store.writes).toEqual([['a', 'bad', 'c'], ['a'], ['bad'], ['c']]);
    expect(outbox.stats()).toMatchObject({
      pendingBatches: 0,
      quarantinedBatches: 1,
      quarantinedPoints: 100,
    });
    expect(await outbox.listQuarantine(10)).toMatchObject([
      { publisher: 'bad', reason: 'bad line from bad' },
    ]);
    expect(await writer.drainOnce()).toEqual({ outcome: 'idle' });
  });

  it('quarantines a single refused batch without another try', async () => {
    await accept('bad');
    store.next(refused());
    expect(await writer.drainOnce()).toMatchObject({
      outcome: 'written',
      batches: 0,
      quarantined: 1,
    });
    expect(await outbox.listQuarantine(1)).toMatchObject([
      { reason: 'write answered 400: partial write: field type conflict' },
    ]);
  });

  it('stops isolating when the store becomes unavailable, keeping the rest', async () => {
    for (const d of ['a', 'b', 'c']) await accept(d);
    store.next(refused(), ok, unavailable());
    expect(await writer.drainOnce()).toMatchObject({
      outcome: 'failed',
      batches: 1,
      quarantined: 0,
    });
    expect((await outbox.peek(1_000)).map((b) => b.publisher)).toEqual(['b', 'c']);
    expect(outbox.stats().quarantinedBatches).toBe(0);
  });

  it('wakes up promptly when a batch is accepted, not at the next poll', async () => {
    writer = make({ idlePollMs: 60_000 });
    writer.start();
    await new Promise((resolve) => setTimeout(resolve, 20)); // the writer is idle now
    store.next(ok);
    await accept('a');
    await vi.waitFor(() => expect(pending()).toBe(0), { timeout: 5_000, interval: 5 });
    expect(store.writes).toEqual([['a']]);
  });

  it('lets the write in flight finish on stop, then writes nothing more', async () => {
    writer.start();
    let confirm!: () => void;
    store.next(() => new Promise<void>((resolve) => (confirm = resolve)));
    await accept('a');
    await vi.waitFor(() => expect(store.writes).toHaveLength(1));
    let stopped = false;
    const stopping = writer.stop().then(() => (stopped = true));
    await accept('b');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    confirm();
    await stopping;
    expect((await outbox.peek(1_000)).map((b) => b.publisher)).toEqual(['b']);
    expect(store.writes).toHaveLength(1);
  });

  /** A write that waits to be told how it ends. */
  function heldWrites() {
    const held: { resolve: () => void; reject: (err: unknown) => void }[] = [];
    const handler: WriteHandler = () =>
      new Promise<void>((resolve, reject) => held.push({ resolve, reject }));
    return { held, handler };
  }
  const settle = () => new Promise((resolve) => setTimeout(resolve, 30));

  it('keeps up to maxWritesInFlight writes going, removing each chunk after its own write', async () => {
    writer = make({ maxPointsPerWrite: 100, maxWritesInFlight: 2 });
    for (const d of ['a', 'b', 'c', 'd']) await accept(d);
    const { held, handler } = heldWrites();
    store.next(handler, handler, handler, handler);
    writer.start();
    await vi.waitFor(() => expect(store.writes).toEqual([['a'], ['b']]));
    await settle();
    expect(store.writes).toHaveLength(2); // no third while two are in flight
    expect(pending()).toBe(4);
    held[1]!.resolve(); // b first
    await vi.waitFor(() => expect(store.writes).toEqual([['a'], ['b'], ['c']]));
    expect((await outbox.peek(1_000)).map((b) => b.publisher)).toEqual(['a', 'c', 'd']);
    held[0]!.resolve();
    await vi.waitFor(() => expect(store.writes).toHaveLength(4));
    held[2]!.resolve();
    held[3]!.resolve();
    await vi.waitFor(() => expect(pending()).toBe(0));
  });

  it('backs off once when concurrent writes fail together, keeping their batches', async () => {
    writer = make({ maxPointsPerWrite: 100, maxWritesInFlight: 2 });
    for (const d of ['a', 'b', 'c']) await accept(d);
    const { held, handler } = heldWrites();
    store.next(handler, handler);
    writer.start();
    await vi.waitFor(() => expect(store.writes).toHaveLength(2));
    held[0]!.reject(new StoreUnavailable('write answered 503'));
    held[1]!.reject(new StoreUnavailable('write answered 503'));
    await settle();
    // One failure: half of minBackoffMs, not of twice it. Nothing is tried before.
    expect(store.writes).toHaveLength(2);
    expect(pending()).toBe(3);
    store.next(ok, ok, ok);
    clock.advance(49);
    await settle();
    expect(store.writes).toHaveLength(2);
    clock.advance(1);
    await vi.waitFor(() => expect(pending()).toBe(0));
    expect(store.writes.slice(2)).toEqual([['a'], ['b'], ['c']]);
  });

  it('keeps the backoff when a write taken before a failure succeeds after it', async () => {
    writer = make({ maxPointsPerWrite: 100, maxWritesInFlight: 2 });
    for (const d of ['a', 'b', 'c']) await accept(d);
    const { held, handler } = heldWrites();
    store.next(handler, handler);
    writer.start();
    await vi.waitFor(() => expect(store.writes).toHaveLength(2));
    held[0]!.reject(new StoreUnavailable('write answered 503'));
    await settle();
    held[1]!.resolve();
    await vi.waitFor(() => expect(pending()).toBe(2)); // b is written and removed
    await settle();
    expect(store.writes).toHaveLength(2); // the backoff still runs
    store.next(ok, ok);
    clock.advance(50);
    await vi.waitFor(() => expect(pending()).toBe(0));
    expect(store.writes.slice(2)).toEqual([['a'], ['c']]);
  });

  it('exports the outbox and store metrics', async () => {
    const registry = new Registry();
    writer = make({ metrics: registry });
    await accept('a', 10);
    clock.advance(90_000);
    store.next(refused());
    await writer.drainOnce();
    await accept('b', 30);
    clock.advance(5_000);
    const text = await registry.metrics();
    expect(text).toMatch(/^outpost_ingest_outbox_pending 30$/m);
    expect(text).toMatch(/^outpost_ingest_outbox_pending_batches 1$/m);
    expect(text).toMatch(/^outpost_ingest_outbox_oldest_seconds 5$/m);
    expect(text).toMatch(/^outpost_ingest_quarantine_batches 1$/m);
    expect(text).toMatch(/^outpost_ingest_quarantine_points 10$/m);
    expect(text).toMatch(/^outpost_ingest_store_write_seconds_count\{outcome="refused"\} 1$/m);
    store.next(ok);
    await writer.drainOnce();
    expect(await registry.metrics()).toMatch(/^outpost_ingest_store_points_written_total 30$/m);
  });
});
