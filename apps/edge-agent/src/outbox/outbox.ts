/**
 * The outbox: batches waiting for the cloud, kept on disk until the ingest acknowledged
 * (PUBACK after durable acceptance, PROTOCOL.md §9) or refused them (`telemetry.rejected`).
 *
 * Batches are stored unsigned, as the SenML pack `compressPack` built, with the `(boot, seq)`
 * they were given when they entered the outbox. That identity never changes, so a batch sent
 * again after a crash or a lost PUBACK is recognised by the ingest as a duplicate
 * (PROTOCOL.md §5). Signing happens at send time, which lets a late batch carry `bf: true`.
 *
 * The port is synchronous: both implementations are (better-sqlite3 is), and a synchronous
 * append cannot interleave with a take or an ack.
 */

export const WHEN_FULL_POLICIES = ['drop-oldest', 'reject-new', 'downsample-oldest'] as const;
export type WhenFull = (typeof WHEN_FULL_POLICIES)[number];

/** PROTOCOL.md §5: what names a batch for dedup and for `telemetry.rejected`. */
export interface BatchRef {
  readonly boot: string;
  readonly seq: readonly [number, number];
}

export interface NewBatch extends BatchRef {
  /** Wall-clock time the batch entered the outbox (epoch ms). */
  readonly createdMs: number;
  /** Number of SenML records in `pack`. */
  readonly records: number;
  /** The unsigned SenML pack as JSON text (RFC 8428 §5). */
  readonly pack: string;
  /**
   * How many raw readings each record stands for, when the batch holds aggregates
   * (`downsample-oldest`); absent for raw readings (all 1).
   */
  readonly weights?: readonly number[];
  /** 0 for raw readings; n after n rounds of downsampling. */
  readonly level?: number;
}

export interface OutboxBatch extends NewBatch {
  /** Local id; increases in append order (merged batches keep the id of an input). */
  readonly id: number;
  /** Size charged against `maxBytes`: the UTF-8 length of `pack` (and of `weights`). */
  readonly bytes: number;
  readonly level: number;
  /** How often the batch was handed to the uplink before this `take`. */
  readonly attempts: number;
}

export interface QuarantinedBatch extends BatchRef {
  readonly id: number;
  readonly createdMs: number;
  readonly quarantinedMs: number;
  readonly records: number;
  readonly bytes: number;
  /** PROTOCOL.md §9 reason from `telemetry.rejected` or the HTTP problem. */
  readonly reason: string;
  readonly detail: string | undefined;
  readonly pack: string;
}

/** What each policy did, since the outbox was created (kept across restarts on disk). */
export interface OutboxCounters {
  appendedRecords: number;
  ackedRecords: number;
  /** Records removed to make room (`drop-oldest`, or `downsample-oldest` when nothing merges). */
  droppedRecords: number;
  /** Records refused at the door (`reject-new`, or a batch larger than the whole outbox). */
  rejectedRecords: number;
  /** Records merged into aggregates by `downsample-oldest`... */
  downsampledRecords: number;
  /** ...and the aggregate records written instead of them. */
  aggregateRecords: number;
  quarantinedRecords: number;
  /** Quarantined records forgotten because the quarantine exceeded its own bound. */
  quarantineDroppedRecords: number;
  /**
   * Records of refused batches queued again under new numbers (`split`): the readings of
   * registered devices that shared a batch with a device the ingest refused as `not_child`.
   */
  requeuedRecords: number;
}

export const COUNTER_NAMES = [
  'appendedRecords',
  'ackedRecords',
  'droppedRecords',
  'rejectedRecords',
  'downsampledRecords',
  'aggregateRecords',
  'quarantinedRecords',
  'quarantineDroppedRecords',
  'requeuedRecords',
] as const satisfies readonly (keyof OutboxCounters)[];

export function zeroCounters(): OutboxCounters {
  return {
    appendedRecords: 0,
    ackedRecords: 0,
    droppedRecords: 0,
    rejectedRecords: 0,
    downsampledRecords: 0,
    aggregateRecords: 0,
    quarantinedRecords: 0,
    quarantineDroppedRecords: 0,
    requeuedRecords: 0,
  };
}

export interface OutboxStats {
  /** Batches waiting for an acknowledgement. */
  pending: number;
  records: number;
  bytes: number;
  /** `createdMs` of the oldest pending batch. */
  oldestMs: number | undefined;
  quarantined: number;
  quarantinedRecords: number;
  maxBytes: number;
  whenFull: WhenFull;
  counters: OutboxCounters;
}

export type AppendOutcome =
  | {
      stored: true;
      id: number;
      /** Records dropped to make room for this batch. */
      dropped: number;
      /** Records merged into aggregates to make room for this batch. */
      downsampled: number;
    }
  | {
      stored: false;
      /** `full`: reject-new at the bound; `too_large`: the batch alone exceeds `maxBytes`. */
      reason: 'full' | 'too_large';
    };

/** What `split` quarantines of a refused batch, under the refused batch's `(boot, seq)`. */
export interface QuarantinePart {
  readonly createdMs: number;
  readonly records: number;
  /** The quarantined readings as a SenML pack (JSON text). */
  readonly pack: string;
  readonly reason: string;
  readonly detail: string | undefined;
}

/** A refused batch cut in two: what is sent again, and what is quarantined. */
export interface SplitParts {
  /**
   * New pending batches, each under a `(boot, seq)` never sent before: PROTOCOL.md §9 says
   * nothing of a refused batch is stored, so these are new to the ingest, not duplicates.
   */
  readonly requeue: readonly NewBatch[];
  readonly quarantine: QuarantinePart;
}

export interface OutboxLimits {
  maxBytes: number;
  whenFull: WhenFull;
}

export interface Outbox {
  /** Stores a batch, first making room under `whenFull` when it would exceed `maxBytes`. */
  append(batch: NewBatch): AppendOutcome;
  /**
   * The oldest pending batches, skipping ids in `exclude` (those in flight), at most `limit`.
   * Each is counted as attempted before it is returned (durably, before it can be sent), so
   * `downsample-oldest` never merges a batch the ingest may already hold.
   */
  take(limit: number, exclude?: ReadonlySet<number>): OutboxBatch[];
  /** Removes acknowledged batches. Unknown ids (dropped meanwhile) are ignored. */
  ack(ids: readonly number[]): void;
  /**
   * Moves the pending batch named by `ref` to the quarantine. When it is no longer pending
   * (acknowledged a moment before the refusal arrived), `known` (the caller's copy) is
   * quarantined instead. Returns false when neither exists.
   */
  quarantine(
    ref: BatchRef,
    reason: string,
    detail: string | undefined,
    nowMs: number,
    known?: OutboxBatch,
  ): boolean;
  /**
   * Puts a batch that never was pending straight into the quarantine: readings the agent
   * does not send because it knows the ingest refuses them (uplink/child-standing.ts).
   */
  withhold(batch: NewBatch, reason: string, detail: string | undefined, nowMs: number): void;
  /** The pending batch named by `ref`, if it is still pending. */
  find(ref: BatchRef): OutboxBatch | undefined;
  /**
   * Splits a refused batch, in one transaction: the pending batch named by `ref` is removed
   * (when it is still pending: one acknowledged a moment before its refusal is not), the
   * `requeue` batches are appended and the quarantine part enters the quarantine. A crash
   * leaves either the refused batch or its parts, never both or neither. The re-queued
   * batches are not subject to `whenFull`: their readings were admitted once already, and
   * refusing them now would lose what was kept; the next append restores the bound.
   */
  split(ref: BatchRef, parts: SplitParts, nowMs: number): void;
  /** Newest first. */
  listQuarantine(limit: number): QuarantinedBatch[];
  stats(): OutboxStats;
  /** Changes the bound or the policy (remote configuration); applies to the next append. */
  setLimits(limits: OutboxLimits): void;
  close(): void;
}

/** Bytes charged for a batch: its pack, plus its weights when it holds aggregates. */
export function batchBytes(batch: Pick<NewBatch, 'pack' | 'weights'>): number {
  const weights = batch.weights === undefined ? 0 : JSON.stringify(batch.weights).length;
  return Buffer.byteLength(batch.pack, 'utf8') + weights;
}

/** Two refs name the same batch. */
export function sameRef(a: BatchRef, b: BatchRef): boolean {
  return a.boot === b.boot && a.seq[0] === b.seq[0] && a.seq[1] === b.seq[1];
}
