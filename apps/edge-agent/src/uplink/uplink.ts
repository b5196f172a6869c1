import type { SigningKey } from '@outpost/signing/sign';
import type { Logger } from 'pino';
import type { AgentMetrics } from '../metrics/agent-metrics.js';
import type { BatchRef, NewBatch, Outbox, OutboxBatch } from '../outbox/outbox.js';
import type { ChildStanding } from './child-standing.js';
import type { HttpTelemetry } from './http-telemetry.js';
import { splitNotChild } from './not-child.js';
import { isBackfill, signOutboxBatch } from './sign-batch.js';

/** What the uplink needs of an MQTT session (MqttSession; a fake in unit tests). */
export interface BatchPublisher {
  readonly up: boolean;
  /** Resolves on PUBACK. */
  publish(topic: string, payload: string): Promise<void>;
  /** How long the session has been down, 0 while up. */
  downForMs(): number;
  /** Drop the connection and reconnect (a PUBACK that never came). */
  reset(reason: string): void;
}

export interface UplinkOptions {
  outbox: Outbox;
  key: SigningKey;
  /** `v1/devices/{gateway}/telemetry`. */
  topic: string;
  mqtt: BatchPublisher;
  /** The HTTP fallback, when configured. */
  http?: HttpTelemetry | undefined;
  /** Batches sent and not yet acknowledged, at most; default 16. */
  window?: number;
  /** A batch older than this when sent carries `bf: true`; default 10 s. */
  backfillAfterMs?: number;
  /** No PUBACK for this long: the session is reset; default 30 s. */
  ackTimeoutMs?: number;
  /** MQTT down this long: batches go over HTTP meanwhile; default 30 s. */
  httpAfterMs?: number;
  /** Wall clock, epoch ms. */
  now: () => number;
  /** Monotonic ms. */
  monotonic: () => number;
  logger: Logger;
  metrics: AgentMetrics;
  /** The outbox just became empty (after holding a backlog). */
  onDrained?: () => void;
  /**
   * Splitting batches refused as `not_child` (./not-child.ts); without it such a batch is
   * quarantined whole, like any other refusal.
   */
  notChild?: NotChildOptions;
}

export interface NotChildOptions {
  /** The gateway's id: its own readings carry no base name. */
  publisherId: string;
  /** Who is known registered; learns which devices to keep apart. */
  standing: ChildStanding;
  /**
   * A `(boot, seq)` for `records` re-queued records: this boot's next numbers, which no
   * batch was sent under.
   */
  renumber(records: number): BatchRef;
}

interface InFlight {
  batch: OutboxBatch;
  transport: 'mqtt' | 'http';
  sentAt: number;
}

/** How long an acknowledged batch is kept for a `telemetry.rejected` that follows it. */
const RECENT_ACKED_MS = 10_000;
const RECENT_ACKED_MAX = 64;
const HTTP_WINDOW = 4;

/**
 * Drains the outbox to the ingest: sign → publish QoS 1 → on PUBACK remove from the outbox.
 * A bounded window of batches is in flight; a batch leaves the outbox only when the ingest
 * acknowledged it (it acks after durable acceptance, PROTOCOL.md §9) or refused it
 * (`telemetry.rejected` → quarantine). When the session drops, whatever was in flight is
 * sent again on the next one; `(boot, seq)` make those resends duplicates to the ingest.
 */
export class Uplink {
  readonly #o: UplinkOptions;
  readonly #window: number;
  readonly #inflight = new Map<number, InFlight>();
  /** Acknowledged, not yet removed from the outbox (removed together on the next tick). */
  readonly #acked = new Map<number, OutboxBatch>();
  /** Recently acknowledged batches by `boot/seq`, for a refusal that arrives after the ack. */
  readonly #recent = new Map<string, { batch: OutboxBatch; at: number }>();
  /**
   * Recently refused batches by `boot/seq`: a PUBACK that comes after the refusal (of a
   * resend, or one held up) must not remove the batch that took the refused one's id in the
   * outbox meanwhile (SQLite hands out the highest id + 1 again).
   */
  readonly #refused = new Set<string>();
  #flushScheduled = false;
  /** After `stop`, acks are written once (the outbox closes right after). */
  #flushedAfterStop = false;
  #pumping = false;
  #again = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  /** Publishes go out in the order batches were taken, though they are signed in parallel. */
  #publishTurn: Promise<unknown> = Promise.resolve();
  #rateWindowStart: number;
  #rateWindowRecords = 0;
  #rate = 0;

  constructor(options: UplinkOptions) {
    this.#o = options;
    this.#window = Math.max(1, options.window ?? 16);
    this.#rateWindowStart = options.monotonic();
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** Acknowledged records per second, smoothed over a few seconds. */
  get drainRate(): number {
    return this.#rate;
  }

  start(): void {
    // Watches PUBACK timeouts and the HTTP fallback, and retries after transient failures.
    this.#timer = setInterval(() => this.tick(), 1000);
    this.#timer.unref();
    this.kick();
  }

  /** Something was appended, a session came up, or room opened in the window. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#again = false;
        this.#fill();
      } while (this.#again);
    } finally {
      this.#pumping = false;
    }
  }

  /** The MQTT session ended: nothing in flight on it will be acknowledged now. */
  sessionDown(): void {
    for (const [id, entry] of this.#inflight) {
      if (entry.transport === 'mqtt') this.#inflight.delete(id);
    }
    this.#o.metrics.inflight.set(this.#inflight.size);
  }

  /**
   * PROTOCOL.md §8 `telemetry.rejected`: the batch goes to quarantine, never to be retried.
   * A `not_child` refusal is split first (`notChild`): the readings of the gateway and of
   * its known registered children go back to the outbox under new numbers, only the others
   * are quarantined.
   */
  rejected(ref: BatchRef, reason: string, detail: string | undefined): boolean {
    const key = refKey(ref);
    const known = this.#recent.get(key)?.batch;
    this.#recent.delete(key);
    this.#refused.add(key);
    while (this.#refused.size > RECENT_ACKED_MAX) {
      this.#refused.delete(this.#refused.values().next().value!);
    }
    for (const [id, entry] of this.#inflight) {
      if (refKey(entry.batch) === key) this.#inflight.delete(id);
    }
    for (const [id, batch] of this.#acked) {
      if (refKey(batch) === key) this.#acked.delete(id);
    }
    const split = reason === 'not_child' && this.#splitNotChild(ref, reason, detail, known);
    const moved = split || this.#o.outbox.quarantine(ref, reason, detail, this.#o.now(), known);
    if (moved) {
      this.#o.metrics.batchesRejected.inc({ reason });
      if (!split) {
        this.#o.logger.warn(
          { boot: ref.boot, seq: ref.seq, reason, detail },
          'batch refused by the ingest; quarantined',
        );
      }
    } else {
      this.#o.logger.warn({ boot: ref.boot, seq: ref.seq, reason }, 'refusal of an unknown batch');
    }
    if (split) this.kick();
    return moved;
  }

  /** True when the refused batch was split (both parts written); false to quarantine it. */
  #splitNotChild(
    ref: BatchRef,
    reason: string,
    detail: string | undefined,
    known: OutboxBatch | undefined,
  ): boolean {
    const notChild = this.#o.notChild;
    if (notChild === undefined) return false;
    const batch = this.#o.outbox.find(ref) ?? known;
    if (batch === undefined) return false;
    const { standing } = notChild;
    const { strangers, parts } = splitNotChild(batch, notChild.publisherId, (id) =>
      standing.registered(id),
    );
    const isolated = standing.isolate(strangers);
    if (isolated.length > 0) {
      this.#o.logger.warn(
        { devices: isolated, withheld: isolated.filter((id) => standing.withheld(id)) },
        'refused as not a child of this gateway: their readings go in batches of their own (withheld ones to the quarantine unsent) until the broker grants their commands topic',
      );
    }
    if (parts === undefined) return false;
    const requeue = parts.requeue.map(
      (part): NewBatch => ({
        ...notChild.renumber(part.records),
        createdMs: batch.createdMs,
        records: part.records,
        pack: part.pack,
        level: batch.level,
        ...(part.weights === undefined ? {} : { weights: part.weights }),
      }),
    );
    this.#o.outbox.split(
      ref,
      {
        requeue,
        quarantine: {
          createdMs: batch.createdMs,
          records: parts.quarantine.records,
          pack: parts.quarantine.pack,
          reason,
          detail,
        },
      },
      this.#o.now(),
    );
    this.#o.metrics.batchesSplit.inc();
    this.#o.logger.warn(
      {
        boot: ref.boot,
        seq: ref.seq,
        reason,
        detail,
        requeued: requeue.reduce((n, b) => n + b.records, 0),
        quarantined: parts.quarantine.records,
        strangers,
      },
      'batch refused by the ingest; readings of registered devices queued again, the rest quarantined',
    );
    return true;
  }

  /**
   * Stops sending; acknowledgements already received are written to the outbox now, later
   * ones are not (those batches are sent again after the next start).
   */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#flushAcks();
  }

  #transport(): 'mqtt' | 'http' | undefined {
    if (this.#o.mqtt.up) return 'mqtt';
    if (this.#o.http !== undefined && this.#o.mqtt.downForMs() >= (this.#o.httpAfterMs ?? 30_000)) {
      return 'http';
    }
    return undefined;
  }

  #fill(): void {
    const transport = this.#transport();
    if (transport === undefined) return;
    const window = transport === 'mqtt' ? this.#window : Math.min(this.#window, HTTP_WINDOW);
    const room = window - this.#inflight.size;
    if (room <= 0) return;
    const exclude = new Set([...this.#inflight.keys(), ...this.#acked.keys()]);
    const batches = this.#o.outbox.take(room, exclude);
    for (const batch of batches) {
      const entry: InFlight = { batch, transport, sentAt: this.#o.monotonic() };
      this.#inflight.set(batch.id, entry);
      void this.#send(entry);
    }
    this.#o.metrics.inflight.set(this.#inflight.size);
  }

  async #send(entry: InFlight): Promise<void> {
    const { batch, transport } = entry;
    const { metrics, logger } = this.#o;
    const backfilled = isBackfill(batch, this.#o.now(), this.#o.backfillAfterMs ?? 10_000);
    const signed = signOutboxBatch(this.#o.key, batch, backfilled);
    const turn = this.#publishTurn.then(() => signed);
    this.#publishTurn = turn.catch(() => undefined);
    try {
      const jws = await turn;
      if (this.#inflight.get(batch.id) !== entry) return; // the session dropped meanwhile
      metrics.batchesSent.inc({ transport, backfilled: String(backfilled) });
      if (transport === 'mqtt') {
        await this.#o.mqtt.publish(this.#o.topic, jws);
        this.#done(entry, 'acked');
      } else {
        const result = await this.#o.http!.send(jws);
        if (result.kind === 'acked') this.#done(entry, 'acked');
        else {
          this.#done(entry, 'rejected');
          this.rejected(batch, result.reason, result.detail);
        }
      }
    } catch (err) {
      if (this.#inflight.get(batch.id) === entry) {
        this.#inflight.delete(batch.id);
        metrics.sendFailures.inc({ transport, reason: transport === 'mqtt' ? 'session' : 'http' });
        logger.debug({ err, id: batch.id, transport }, 'send failed; will retry');
      }
    }
    this.#o.metrics.inflight.set(this.#inflight.size);
    this.kick();
  }

  #done(entry: InFlight, outcome: 'acked' | 'rejected'): void {
    const { batch, transport } = entry;
    // A batch dropped from the window (session down) and sent again may be acked twice.
    if (this.#inflight.get(batch.id) === entry) this.#inflight.delete(batch.id);
    if (outcome === 'rejected' || this.#acked.has(batch.id)) return;
    // The PUBACK of a batch refused meanwhile: it has left the outbox already.
    if (this.#refused.has(refKey(batch))) return;
    this.#o.metrics.batchesAcked.inc({ transport });
    this.#acked.set(batch.id, batch);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flushAcks());
    }
  }

  /** One outbox transaction for all the acks of a tick. */
  #flushAcks(): void {
    this.#flushScheduled = false;
    if (this.#acked.size === 0) return;
    if (this.#stopped && this.#flushedAfterStop) return;
    this.#flushedAfterStop = this.#stopped;
    const batches = [...this.#acked.values()];
    this.#acked.clear();
    this.#o.outbox.ack(batches.map((b) => b.id));
    const now = this.#o.monotonic();
    let records = 0;
    for (const batch of batches) {
      records += batch.records;
      this.#recent.set(refKey(batch), { batch, at: now });
    }
    this.#o.metrics.recordsAcked.inc(records);
    this.#rateWindowRecords += records;
    if (this.#inflight.size === 0 && this.#o.outbox.stats().pending === 0) this.#o.onDrained?.();
    while (this.#recent.size > RECENT_ACKED_MAX) {
      this.#recent.delete(this.#recent.keys().next().value!);
    }
    this.kick();
  }

  /**
   * Once a second (from `start`): drain-rate bookkeeping, PUBACK timeouts, the HTTP fallback,
   * and another try after transient failures.
   */
  tick(): void {
    const now = this.#o.monotonic();
    // Drain rate: records acknowledged per second, smoothed over ~5 s.
    const elapsed = now - this.#rateWindowStart;
    if (elapsed >= 1000) {
      const rate = (this.#rateWindowRecords * 1000) / elapsed;
      this.#rate = this.#rate === 0 ? rate : 0.8 * this.#rate + 0.2 * rate;
      if (this.#rate < 0.01) this.#rate = 0;
      this.#rateWindowStart = now;
      this.#rateWindowRecords = 0;
      this.#o.metrics.drainRate.set(this.#rate);
    }
    for (const [key, { at }] of this.#recent) {
      if (now - at <= RECENT_ACKED_MS) break;
      this.#recent.delete(key);
    }
    const timeout = this.#o.ackTimeoutMs ?? 30_000;
    for (const entry of this.#inflight.values()) {
      if (entry.transport === 'mqtt' && now - entry.sentAt > timeout) {
        this.#o.metrics.sendFailures.inc({ transport: 'mqtt', reason: 'ack_timeout' });
        this.sessionDown();
        this.#o.mqtt.reset('no PUBACK within the ack timeout');
        break;
      }
    }
    this.kick();
  }
}

function refKey(ref: BatchRef): string {
  return `${ref.boot}/${ref.seq[0]}/${ref.seq[1]}`;
}
