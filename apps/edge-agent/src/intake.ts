import type { ClockQuality, Reading } from '@outpost/protocol/senml';
import type { Logger } from 'pino';
import type { AgentMetrics } from './metrics/agent-metrics.js';
import type { Outbox } from './outbox/outbox.js';
import { carriable, packReadings } from './outbox/pack.js';
import { type Batch, type BatchConfig, Batcher } from './pipeline/batcher.js';
import { Pipeline, type PipelineConfig } from './pipeline/filters.js';
import { type SourceReading, toReading } from './sources/source.js';

/**
 * From the sources to the outbox: pipeline steps → clock quality → batcher → `(boot, seq)`
 * → outbox. Everything here runs synchronously inside the sink call or the timer, so a
 * reading is either still in the pipeline or batcher (memory, at most `batch.maxAge` plus
 * open aggregate windows) or in the outbox (disk).
 */
export interface IntakeOptions {
  outbox: Outbox;
  /** The gateway's id: its own readings carry no base name. */
  publisherId: string;
  /** PROTOCOL.md §5: random per agent start. */
  bootId: string;
  pipeline: PipelineConfig;
  batch: BatchConfig;
  /** `cq` for readings leaving the pipeline now. */
  clockQuality: () => ClockQuality;
  /** Wall clock (epoch ms): pipeline time and `createdMs` of batches. */
  now: () => number;
  /** Monotonic ms: batch ages. */
  monotonic: () => number;
  metrics: AgentMetrics;
  logger: Logger;
  /** A batch entered the outbox. */
  onAppended: () => void;
  /** Devices the ingest refused as not children of the gateway (uplink/child-standing.ts). */
  strangers?: Strangers;
}

export interface Strangers {
  /** Readings kept in batches of their own (BatcherOptions.isolated). */
  isolated(deviceId: string): boolean;
  /** Their batches are quarantined here, never sent. */
  withheld(deviceId: string): boolean;
}

/** Why withheld batches are in the quarantine (PROTOCOL.md §9's reason for them). */
const WITHHELD_REASON = 'not_child';

/** Longest sleep between two looks at the pipeline and the batcher. */
const MAX_TIMER_MS = 1000;

export class Intake {
  readonly #o: IntakeOptions;
  #pipeline: Pipeline;
  #batcher: Batcher;
  #batch: BatchConfig;
  /** Next record sequence number of this boot. */
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #stopped = false;
  #lastRefusalLog = Number.NEGATIVE_INFINITY;

  constructor(options: IntakeOptions) {
    this.#o = options;
    this.#batch = options.batch;
    this.#pipeline = new Pipeline(options.pipeline);
    this.#batcher = this.#newBatcher(options.batch);
  }

  /** The ReadingSink handed to every source. */
  readonly sink = (readings: SourceReading[]): void => {
    if (this.#stopped) return;
    const out = this.#pipeline.process(readings, this.#o.now());
    if (out.length > 0) this.#toBatcher(out);
    this.#schedule();
  };

  /** Records handed out so far this boot (the next `seq`). */
  get nextSeq(): number {
    return this.#seq;
  }

  /** Readings held in memory (open batch); aggregate windows are the pipeline's. */
  get pending(): number {
    return this.#batcher.pending;
  }

  get pipelineStats(): ReturnType<Pipeline['stats']> {
    return this.#pipeline.stats();
  }

  /** Applies a new pipeline and batch config; what the old ones held goes out first. */
  reconfigure(pipeline: PipelineConfig, batch: BatchConfig): void {
    this.#drain();
    this.#pipeline = new Pipeline(pipeline);
    this.#batch = batch;
    this.#batcher = this.#newBatcher(batch);
  }

  /**
   * `n` record sequence numbers of this boot for a batch made outside the intake (the part
   * of a refused batch that is sent again); no batch of this boot used or will use them.
   */
  claimSeq(n: number): [number, number] {
    const seq: [number, number] = [this.#seq, this.#seq + n - 1];
    this.#seq += n;
    return seq;
  }

  /** Shutdown: everything held goes to the outbox; later readings are ignored. */
  stop(): void {
    if (this.#stopped) return;
    this.#drain();
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #newBatcher(batch: BatchConfig): Batcher {
    const { strangers } = this.#o;
    return new Batcher(batch, {
      publisherId: this.#o.publisherId,
      isolated: strangers === undefined ? undefined : (id) => strangers.isolated(id),
    });
  }

  #drain(): void {
    const now = this.#o.now();
    const out = this.#pipeline.flush(now);
    if (out.length > 0) this.#toBatcher(out);
    this.#appendAll(this.#batcher.flush());
  }

  #toBatcher(readings: SourceReading[]): void {
    const cq = this.#o.clockQuality();
    const converted: Reading[] = readings.map((r) => toReading(r, cq));
    this.#appendAll(this.#batcher.add(converted, this.#o.monotonic()));
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    if (this.#stopped) return;
    const now = this.#o.now();
    const out = this.#pipeline.tick(now);
    if (out.length > 0) this.#toBatcher(out);
    this.#appendAll(this.#batcher.tick(this.#o.monotonic()));
    this.#schedule();
  }

  /** One timer for the earliest of the pipeline's and the batcher's next due time. */
  #schedule(): void {
    if (this.#stopped) return;
    const now = this.#o.now();
    const mono = this.#o.monotonic();
    let delay = Number.POSITIVE_INFINITY;
    const pipelineDue = this.#pipeline.nextDueAt();
    if (pipelineDue !== undefined) delay = Math.min(delay, pipelineDue - now);
    const batchDue = this.#batcher.nextDueAt();
    if (batchDue !== undefined) delay = Math.min(delay, batchDue - mono);
    if (delay === Number.POSITIVE_INFINITY) return;
    // A wall-clock jump can put the pipeline's due time far away: look again within a second.
    delay = Math.min(Math.max(0, delay), MAX_TIMER_MS);
    const at = mono + delay;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  #appendAll(batches: Batch[]): void {
    let appended = false;
    for (const batch of batches) {
      const withheld = batch.device !== undefined && this.#o.strangers?.withheld(batch.device);
      appended = this.#append(batch.readings, withheld ? batch.device : undefined) || appended;
    }
    if (appended) this.#o.onAppended();
  }

  /** `withheldFor`: the device whose batch goes to the quarantine instead (Strangers). */
  #append(readings: Reading[], withheldFor?: string): boolean {
    const { outbox, publisherId, metrics } = this.#o;
    let packs: ReturnType<typeof packReadings>;
    try {
      packs = packReadings(readings, publisherId, this.#batch.maxRecords);
    } catch {
      // SenML cannot carry some of them (e.g. a time before 1978 from an unset clock): those
      // are counted and left out, the others go on.
      const good = readings.filter((r) => carriable(r, publisherId));
      metrics.readings.inc({ outcome: 'invalid' }, readings.length - good.length);
      this.#o.logger.warn(
        { count: readings.length - good.length },
        'readings SenML cannot carry were left out',
      );
      if (good.length === 0) return false;
      packs = packReadings(good, publisherId, this.#batch.maxRecords);
    }
    let appended = false;
    for (const pack of packs) {
      const n = pack.readings.length;
      const seq: [number, number] = [this.#seq, this.#seq + n - 1];
      this.#seq += n;
      const batch = {
        boot: this.#o.bootId,
        seq,
        createdMs: this.#o.now(),
        records: n,
        pack: pack.pack,
      };
      let outcome: ReturnType<Outbox['append']>;
      try {
        if (withheldFor !== undefined) {
          outbox.withhold(
            batch,
            WITHHELD_REASON,
            `not sent: the ingest refused ${withheldFor} as not a child of ${publisherId}, and the broker refuses its commands topic`,
            this.#o.now(),
          );
          metrics.readings.inc({ outcome: 'withheld' }, n);
          continue;
        }
        outcome = outbox.append(batch);
      } catch (err) {
        // The disk failed (full, read-only, I/O error): these readings cannot be kept.
        metrics.readings.inc({ outcome: 'failed' }, n);
        this.#logFull(`could not write ${n} records: ${(err as Error).message}`);
        continue;
      }
      if (outcome.stored) {
        appended = true;
        metrics.readings.inc({ outcome: 'outboxed' }, n);
        if (outcome.dropped > 0) this.#logFull(`dropped ${outcome.dropped} oldest records`);
      } else {
        metrics.readings.inc({ outcome: 'refused' }, n);
        this.#logFull(`refused ${n} new records (${outcome.reason})`);
      }
    }
    return appended;
  }

  /** At most one warning a minute while the outbox is full. */
  #logFull(what: string): void {
    const now = this.#o.monotonic();
    if (now - this.#lastRefusalLog < 60_000) return;
    this.#lastRefusalLog = now;
    let stats: Partial<ReturnType<Outbox['stats']>> = {};
    try {
      stats = this.#o.outbox.stats();
    } catch {
      // the disk is failing: say what we know
    }
    this.#o.logger.warn(
      { bytes: stats.bytes, maxBytes: stats.maxBytes, whenFull: stats.whenFull },
      `outbox: ${what}`,
    );
  }
}
