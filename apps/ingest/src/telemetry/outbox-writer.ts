import { performance } from 'node:perf_hooks';
import { AppError } from '@outpost/protocol/errors';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Clock } from '../injection.js';
import type { DurableOutbox, OutboxBatch } from './durable-outbox.js';
import {
  StoreRefused,
  StoreUnavailable,
  type TelemetryPoint,
  type TelemetryStore,
} from './telemetry-store.js';

/**
 * Drains the durable outbox into the TelemetryStore: peek → write → remove. At least once:
 * a batch is deleted only after the store took it, and the store is idempotent, so a crash
 * between write and remove writes the same points again and duplicates nothing.
 *
 * In the background up to `maxWritesInFlight` chunks are written at once, each a different
 * run of batches (the next peek skips those in flight), so the store works on one while the
 * event loop prepares the next. Each chunk is removed only once its own write succeeded.
 * Chunks may therefore reach the store out of order; since the store keeps one value per
 * (device, metric, time), only two different values sent for the very same point could end
 * up the other way round.
 *
 * - StoreUnavailable: keep everything, back off exponentially with full jitter, never
 *   sooner than the server's Retry-After; `store_misconfigured` backs off slowly.
 * - StoreRefused for a chunk of several batches: write each batch alone to find the
 *   refused ones; those go to quarantine with the server's reason, the others are written.
 *
 * Time and randomness are injected: `drainOnce()` decides from `clock` whether a backoff is
 * over, and `random` is the jitter, so tests step through backoffs without timers.
 */

export interface OutboxWriterOptions {
  outbox: DurableOutbox;
  store: TelemetryStore;
  clock: Clock;
  /** Uniform in [0, 1): the jitter. */
  random: () => number;
  logger: Logger;
  /** Points per store write; 5,000 by default. A larger single batch is written whole. */
  maxPointsPerWrite?: number;
  /** Store writes in flight at once while running in the background; 3 by default. */
  maxWritesInFlight?: number;
  /** First backoff ceiling; 100 ms by default. Each failure doubles it. */
  minBackoffMs?: number;
  /** Largest backoff ceiling; 30 s by default. */
  maxBackoffMs?: number;
  /** Least wait while the store reports itself misconfigured (401/403/404); 30 s by default. */
  misconfiguredBackoffMs?: number;
  /** Longest Retry-After honoured; 10 min by default. */
  maxRetryAfterMs?: number;
  /** With nothing pending, look again after this long even without a wake-up; 1 s. */
  idlePollMs?: number;
  /** Registers the writer's metrics here. */
  metrics?: Registry;
}

interface Progress {
  /** Batches written and removed. */
  batches: number;
  points: number;
  /** Batches the store refused, now in quarantine. */
  quarantined: number;
}

export type DrainResult =
  | { outcome: 'idle' }
  /** A backoff is running: nothing was attempted. */
  | { outcome: 'waiting'; retryInMs: number }
  | ({ outcome: 'written' } & Progress)
  /** The store failed; what was written before the failure is removed. */
  | ({ outcome: 'failed'; retryInMs: number; error: AppError } & Progress);

type WriteOutcome = 'ok' | 'unavailable' | 'refused';

export class OutboxWriter {
  private readonly outbox: DurableOutbox;
  private readonly store: TelemetryStore;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly maxPointsPerWrite: number;
  private readonly maxWritesInFlight: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly misconfiguredBackoffMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly idlePollMs: number;
  private readonly writeSeconds: Histogram<'outcome'> | undefined;
  private readonly pointsWritten: Counter | undefined;
  private failures = 0;
  private failingSinceMs: number | null = null;
  private retryAtMs = Number.NEGATIVE_INFINITY;
  /**
   * Counts failures: a chunk taken before the latest failure neither resets the backoff by
   * succeeding nor doubles it by failing too (it met the same outage).
   */
  private generation = 0;
  /** Ids of the batches being written. */
  private readonly inFlight = new Set<number>();
  private loop: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private idle = false;
  /** Set when the outbox accepted a batch since the last peek: no idle sleep then. */
  private arrived = false;
  /** Set when a write finished since the last peek: its batches may be due again. */
  private settled = false;
  private unsubscribe: (() => void) | undefined;

  constructor(options: OutboxWriterOptions) {
    this.outbox = options.outbox;
    this.store = options.store;
    this.clock = options.clock;
    this.random = options.random;
    this.log = options.logger.child({ module: 'outbox-writer' });
    this.maxPointsPerWrite = options.maxPointsPerWrite ?? 5_000;
    this.maxWritesInFlight = Math.max(1, options.maxWritesInFlight ?? 3);
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.misconfiguredBackoffMs = options.misconfiguredBackoffMs ?? 30_000;
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 600_000;
    this.idlePollMs = options.idlePollMs ?? 1_000;
    if (options.metrics !== undefined) {
      const registers = [options.metrics];
      const outbox = this.outbox;
      const clock = this.clock;
      this.writeSeconds = new Histogram({
        name: 'outpost_ingest_store_write_seconds',
        help: 'Duration of telemetry store writes, by outcome (ok, unavailable, refused)',
        labelNames: ['outcome'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      });
      this.pointsWritten = new Counter({
        name: 'outpost_ingest_store_points_written_total',
        help: 'Points written from the outbox to the telemetry store',
        registers,
      });
      new Gauge({
        name: 'outpost_ingest_outbox_pending',
        help: 'Points accepted and not yet written to the telemetry store',
        registers,
        collect() {
          this.set(outbox.stats().pendingPoints);
        },
      });
      new Gauge({
        name: 'outpost_ingest_outbox_pending_batches',
        help: 'Batches accepted and not yet written to the telemetry store',
        registers,
        collect() {
          this.set(outbox.stats().pendingBatches);
        },
      });
      new Gauge({
        name: 'outpost_ingest_outbox_oldest_seconds',
        help: 'Age of the oldest batch waiting in the outbox (0 when empty)',
        registers,
        collect() {
          const { oldestMs } = outbox.stats();
          this.set(oldestMs === null ? 0 : Math.max(0, (clock.now() - oldestMs) / 1000));
        },
      });
      new Gauge({
        name: 'outpost_ingest_quarantine_batches',
        help: 'Batches the telemetry store refused, kept in quarantine',
        registers,
        collect() {
          this.set(outbox.stats().quarantinedBatches);
        },
      });
      new Gauge({
        name: 'outpost_ingest_quarantine_points',
        help: 'Points in quarantined batches',
        registers,
        collect() {
          this.set(outbox.stats().quarantinedPoints);
        },
      });
    }
  }

  /** Starts draining in the background; wakes up whenever the outbox accepts a batch. */
  start(): void {
    if (this.loop !== undefined) return;
    this.stopping = false;
    this.unsubscribe = this.outbox.onAccepted(() => {
      this.arrived = true;
      if (this.idle) this.wake?.();
    });
    this.loop = this.run();
  }

  /** Lets the writes in flight finish (and their batches be removed), then stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  /** One step: a chunk written (or isolated), a failure with its backoff, or nothing to do. */
  async drainOnce(): Promise<DrainResult> {
    const now = this.clock.now();
    if (now < this.retryAtMs) return { outcome: 'waiting', retryInMs: this.retryAtMs - now };
    const chunk = await this.claim();
    if (chunk.length === 0) return { outcome: 'idle' };
    return this.drain(chunk);
  }

  /** The next chunk not already in flight, marked as in flight. */
  private async claim(): Promise<OutboxBatch[]> {
    const chunk = await this.outbox.peek(this.maxPointsPerWrite, this.inFlight);
    for (const batch of chunk) this.inFlight.add(batch.id);
    return chunk;
  }

  /** Writes a claimed chunk, isolating refused batches, and gives up the claim. */
  private async drain(chunk: readonly OutboxBatch[]): Promise<DrainResult> {
    const generation = this.generation;
    try {
      const progress: Progress = { batches: 0, points: 0, quarantined: 0 };
      const first = await this.write(chunk, progress);
      if (first === undefined) return this.succeeded(progress, generation);
      if (!(first instanceof StoreRefused)) return this.failed(first, progress, generation);
      if (chunk.length === 1) {
        await this.quarantine(chunk[0]!, first, progress);
        return this.succeeded(progress, generation);
      }
      // Somewhere in the chunk is a batch the store will never take: find it alone.
      for (const batch of chunk) {
        const err = await this.write([batch], progress);
        if (err === undefined) continue;
        if (!(err instanceof StoreRefused)) return this.failed(err, progress, generation);
        await this.quarantine(batch, err, progress);
      }
      return this.succeeded(progress, generation);
    } finally {
      for (const batch of chunk) this.inFlight.delete(batch.id);
    }
  }

  /** Writes the batches and removes them; the error if the store failed. */
  private async write(
    batches: readonly OutboxBatch[],
    progress: Progress,
  ): Promise<AppError | undefined> {
    const points = batches.length === 1 ? batches[0]!.points : concat(batches);
    const started = performance.now();
    let outcome: WriteOutcome = 'ok';
    try {
      await this.store.write(points);
    } catch (err) {
      // Anything else (a bug, a driver error) keeps the data too: treat it as unavailable.
      const reason = `telemetry store write failed: ${(err as Error)?.message}`;
      const error =
        err instanceof StoreRefused || err instanceof StoreUnavailable
          ? err
          : new StoreUnavailable(reason, undefined, { cause: err });
      outcome = error instanceof StoreRefused ? 'refused' : 'unavailable';
      return error;
    } finally {
      this.writeSeconds?.observe({ outcome }, (performance.now() - started) / 1000);
    }
    await this.outbox.remove(batches.map((b) => b.id));
    this.pointsWritten?.inc(points.length);
    progress.batches += batches.length;
    progress.points += points.length;
    return undefined;
  }

  private async quarantine(
    batch: OutboxBatch,
    err: StoreRefused,
    progress: Progress,
  ): Promise<void> {
    await this.outbox.quarantine(batch.id, err.message);
    progress.quarantined++;
    this.log.warn(
      {
        batchId: batch.id,
        publisher: batch.publisher,
        boot: batch.boot,
        seq: batch.seq,
        points: batch.points.length,
        reason: err.message,
      },
      'telemetry store refused a batch; quarantined',
    );
  }

  private succeeded(progress: Progress, generation: number): DrainResult {
    // Taken before the latest failure: it says nothing about the store now.
    if (generation !== this.generation) return { outcome: 'written', ...progress };
    if (this.failingSinceMs !== null) {
      this.log.info(
        {
          downForMs: this.clock.now() - this.failingSinceMs,
          pendingPoints: this.outbox.stats().pendingPoints,
        },
        'telemetry store writable again; draining the outbox',
      );
    }
    this.failures = 0;
    this.failingSinceMs = null;
    this.retryAtMs = Number.NEGATIVE_INFINITY;
    return { outcome: 'written', ...progress };
  }

  private failed(error: AppError, progress: Progress, generation: number): DrainResult {
    const now = this.clock.now();
    if (generation !== this.generation) {
      // Another chunk already failed since this one was taken: its backoff stands.
      return {
        outcome: 'failed',
        retryInMs: Math.max(0, this.retryAtMs - now),
        error,
        ...progress,
      };
    }
    this.generation++;
    this.failures++;
    const ceiling = Math.min(
      this.maxBackoffMs,
      this.minBackoffMs * 2 ** Math.min(this.failures - 1, 30),
    );
    // Full jitter: anywhere between no wait and the ceiling, so replicas do not retry in step.
    let retryInMs = Math.floor(this.random() * ceiling);
    if (error.code === 'store_misconfigured')
      retryInMs = Math.max(retryInMs, this.misconfiguredBackoffMs);
    if (error instanceof StoreUnavailable && error.retryAfterS !== undefined) {
      retryInMs = Math.max(retryInMs, Math.min(error.retryAfterS * 1000, this.maxRetryAfterMs));
    }
    this.retryAtMs = now + retryInMs;
    const context = {
      err: error,
      retryInMs,
      failures: this.failures,
      pendingPoints: this.outbox.stats().pendingPoints,
    };
    if (this.failingSinceMs === null) {
      this.failingSinceMs = now;
      if (error.code === 'store_misconfigured') {
        this.log.error(context, 'telemetry store rejects our configuration; keeping the outbox');
      } else {
        this.log.warn(context, 'telemetry store unavailable; keeping the outbox and backing off');
      }
    } else {
      this.log.debug(context, 'telemetry store still unavailable');
    }
    return { outcome: 'failed', retryInMs, error, ...progress };
  }

  /**
   * The background loop: keeps up to `maxWritesInFlight` chunks being written, claims the
   * next as soon as one finishes or a batch arrives, and stops claiming during a backoff.
   */
  private async run(): Promise<void> {
    const writing = new Set<Promise<void>>();
    while (!this.stopping) {
      if (writing.size >= this.maxWritesInFlight) {
        await Promise.race(writing);
        continue;
      }
      const now = this.clock.now();
      if (now < this.retryAtMs) {
        await this.sleep(Math.max(1, this.retryAtMs - now), false);
        continue;
      }
      this.arrived = false;
      this.settled = false;
      const generation = this.generation;
      let chunk: OutboxBatch[];
      try {
        chunk = await this.claim();
      } catch (err) {
        this.outboxFailed(err, generation);
        continue;
      }
      if (this.stopping) {
        for (const batch of chunk) this.inFlight.delete(batch.id);
        break;
      }
      if (chunk.length === 0) {
        // Nothing left that is not already being written: wait for an arrival, or for a
        // write to finish (a failed one leaves its batches to take again).
        if (!this.arrived && !this.settled) await this.sleep(this.idlePollMs, true);
        continue;
      }
      const task: Promise<void> = this.drain(chunk).then(
        () => undefined,
        (err: unknown) => this.outboxFailed(err, generation),
      );
      writing.add(task);
      void task.finally(() => {
        writing.delete(task);
        // A slot is free: claim again without waiting out an idle poll.
        this.settled = true;
        if (this.idle) this.wake?.();
      });
      // Let accepts and I/O run between chunks (the SQLite store never yields).
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(writing);
  }

  /** The outbox itself failed (disk): back off as for an unavailable store. */
  private outboxFailed(err: unknown, generation: number): void {
    const error =
      err instanceof AppError
        ? err
        : new AppError('internal', 'outbox_drain_failed', String((err as Error)?.message), {
            cause: err,
          });
    this.failed(error, { batches: 0, points: 0, quarantined: 0 }, generation);
  }

  /** Waits `ms`, or less if stopped or, when idle, when a batch arrives. */
  private sleep(ms: number, idle: boolean): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = undefined;
        self.idle = false;
        resolve();
      }
      this.idle = idle;
      this.wake = done;
    });
  }
}

/** The points of several batches in one array (a plain loop: `flatMap` costs more here). */
function concat(batches: readonly OutboxBatch[]): TelemetryPoint[] {
  let total = 0;
  for (const batch of batches) total += batch.points.length;
  const points = new Array<TelemetryPoint>(total);
  let i = 0;
  for (const batch of batches) for (const point of batch.points) points[i++] = point;
  return points;
}
