import type { Downsampler } from './downsample.js';
import { makeRoom, type RoomStore } from './make-room.js';
import {
  type AppendOutcome,
  type BatchRef,
  batchBytes,
  type NewBatch,
  type Outbox,
  type OutboxBatch,
  type OutboxCounters,
  type OutboxLimits,
  type OutboxStats,
  type QuarantinedBatch,
  type QuarantinePart,
  type SplitParts,
  sameRef,
  zeroCounters,
} from './outbox.js';

export interface MemoryOutboxOptions extends OutboxLimits {
  downsampler?: Downsampler;
  quarantineMaxBytes?: number;
}

/**
 * The outbox in memory: for tests and benches of everything around the outbox, and for an
 * agent that must not write to its disk. Passes the same contract suite as SqliteOutbox;
 * everything is lost when the process ends.
 */
export class MemoryOutbox implements Outbox {
  #batches = new Map<number, OutboxBatch>();
  readonly #quarantine: QuarantinedBatch[] = [];
  readonly #downsampler: Downsampler | undefined;
  readonly #quarantineMaxBytes: number;
  readonly #counters: OutboxCounters = zeroCounters();
  #limits: OutboxLimits;
  #nextId = 1;
  #nextQuarantineId = 1;
  #records = 0;
  #bytes = 0;
  readonly #room: RoomStore;

  constructor(options: MemoryOutboxOptions) {
    this.#limits = { maxBytes: options.maxBytes, whenFull: options.whenFull };
    this.#downsampler = options.downsampler;
    this.#quarantineMaxBytes = options.quarantineMaxBytes ?? Number.POSITIVE_INFINITY;
    this.#room = {
      pendingBytes: () => this.#bytes,
      scan: (afterId, limit, level) => {
        const out: OutboxBatch[] = [];
        for (const batch of this.#batches.values()) {
          if (out.length >= limit) break;
          if (batch.id <= afterId) continue;
          if (level !== undefined && (batch.attempts > 0 || batch.level !== level)) continue;
          out.push(batch);
        }
        return out;
      },
      unsentLevels: () =>
        [
          ...new Set(
            [...this.#batches.values()].filter((b) => b.attempts === 0).map((b) => b.level),
          ),
        ].sort((a, b) => a - b),
      remove: (batch) => this.#remove(batch.id),
      replace: (inputs, merged) => {
        for (const input of inputs) this.#remove(input.id);
        for (const batch of merged) this.#put({ ...batch, bytes: batchBytes(batch), attempts: 0 });
        // Merged batches reuse older ids: restore id order.
        this.#batches = new Map([...this.#batches].sort((a, b) => a[0] - b[0]));
      },
    };
  }

  append(batch: NewBatch): AppendOutcome {
    const bytes = batchBytes(batch);
    const room = makeRoom(
      this.#room,
      bytes,
      this.#limits.maxBytes,
      this.#limits.whenFull,
      this.#downsampler,
    );
    this.#counters.droppedRecords += room.droppedRecords;
    this.#counters.downsampledRecords += room.downsampledRecords;
    this.#counters.aggregateRecords += room.aggregateRecords;
    if (!room.ok) {
      this.#counters.rejectedRecords += batch.records;
      return { stored: false, reason: bytes > this.#limits.maxBytes ? 'too_large' : 'full' };
    }
    const id = this.#nextId++;
    this.#put({ ...batch, id, bytes, level: batch.level ?? 0, attempts: 0 });
    this.#counters.appendedRecords += batch.records;
    return {
      stored: true,
      id,
      dropped: room.droppedRecords,
      downsampled: room.downsampledRecords,
    };
  }

  take(limit: number, exclude: ReadonlySet<number> = new Set()): OutboxBatch[] {
    const out: OutboxBatch[] = [];
    if (limit <= 0) return out;
    for (const batch of this.#batches.values()) {
      if (out.length >= limit) break;
      if (exclude.has(batch.id)) continue;
      out.push(batch);
      this.#batches.set(batch.id, { ...batch, attempts: batch.attempts + 1 });
    }
    return out;
  }

  ack(ids: readonly number[]): void {
    for (const id of ids) {
      const batch = this.#remove(id);
      if (batch !== undefined) this.#counters.ackedRecords += batch.records;
    }
  }

  quarantine(
    ref: BatchRef,
    reason: string,
    detail: string | undefined,
    nowMs: number,
    known?: OutboxBatch,
  ): boolean {
    let batch = this.find(ref);
    if (batch !== undefined) this.#remove(batch.id);
    else batch = known;
    if (batch === undefined) return false;
    this.#enterQuarantine(batch, { ...batch, reason, detail }, nowMs);
    return true;
  }

  withhold(batch: NewBatch, reason: string, detail: string | undefined, nowMs: number): void {
    this.#enterQuarantine(batch, { ...batch, reason, detail }, nowMs);
  }

  find(ref: BatchRef): OutboxBatch | undefined {
    for (const candidate of this.#batches.values()) {
      if (sameRef(candidate, ref)) return candidate;
    }
    return undefined;
  }

  split(ref: BatchRef, parts: SplitParts, nowMs: number): void {
    const refused = this.find(ref);
    // Nothing can fail half-way in memory; the order matches SqliteOutbox's.
    for (const batch of parts.requeue) {
      const bytes = batchBytes(batch);
      this.#put({ ...batch, id: this.#nextId++, bytes, level: batch.level ?? 0, attempts: 0 });
      this.#counters.requeuedRecords += batch.records;
    }
    if (refused !== undefined) this.#remove(refused.id);
    this.#enterQuarantine(ref, parts.quarantine, nowMs);
  }

  listQuarantine(limit: number): QuarantinedBatch[] {
    return this.#quarantine.slice(-limit).reverse();
  }

  stats(): OutboxStats {
    let oldestMs: number | undefined;
    for (const batch of this.#batches.values()) {
      if (oldestMs === undefined || batch.createdMs < oldestMs) oldestMs = batch.createdMs;
    }
    return {
      pending: this.#batches.size,
      records: this.#records,
      bytes: this.#bytes,
      oldestMs,
      quarantined: this.#quarantine.length,
      quarantinedRecords: this.#quarantine.reduce((n, q) => n + q.records, 0),
      maxBytes: this.#limits.maxBytes,
      whenFull: this.#limits.whenFull,
      counters: { ...this.#counters },
    };
  }

  setLimits(limits: OutboxLimits): void {
    this.#limits = { ...limits };
  }

  close(): void {}

  #enterQuarantine(ref: BatchRef, part: QuarantinePart, nowMs: number): void {
    const bytes = batchBytes(part);
    this.#quarantine.push({
      id: this.#nextQuarantineId++,
      boot: ref.boot,
      seq: ref.seq,
      createdMs: part.createdMs,
      quarantinedMs: nowMs,
      records: part.records,
      bytes,
      reason: part.reason,
      detail: part.detail,
      pack: part.pack,
    });
    this.#counters.quarantinedRecords += part.records;
    let total = this.#quarantine.reduce((n, q) => n + q.bytes, 0);
    while (total > this.#quarantineMaxBytes && this.#quarantine.length > 1) {
      const oldest = this.#quarantine.shift()!;
      total -= oldest.bytes;
      this.#counters.quarantineDroppedRecords += oldest.records;
    }
  }

  #put(batch: OutboxBatch): void {
    this.#batches.set(batch.id, batch);
    this.#records += batch.records;
    this.#bytes += batch.bytes;
  }

  #remove(id: number): OutboxBatch | undefined {
    const batch = this.#batches.get(id);
    if (batch === undefined) return undefined;
    this.#batches.delete(id);
    this.#records -= batch.records;
    this.#bytes -= batch.bytes;
    return batch;
  }
}
