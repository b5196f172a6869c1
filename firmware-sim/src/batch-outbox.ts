import type { SeqRange } from '@outpost/protocol/telemetry';

/**
 * A device's in-memory outbox (pure): batches made and not yet acknowledged, in the order
 * they were made, with a window of batches in flight. A batch leaves it when every one of
 * its messages was acknowledged (PUBACK) or when the service refused it for good
 * (`telemetry.rejected`, PROTOCOL.md §9). When a connection ends, what was in flight is sent
 * again on the next one; the service treats those as duplicates by `(boot, seq)`. Every
 * count here is exact, so "sent" can be compared with "stored".
 */

export interface OutgoingMessage {
  topic: string;
  payload: string;
}

export interface OutboxBatch {
  /** Record numbers of a signed batch; undefined for messages without one. */
  seq: SeqRange | undefined;
  readings: number;
  /** Values per metric. */
  values: Readonly<Record<string, number>>;
  messages: readonly OutgoingMessage[];
}

/** A batch in the outbox, as handed to the publisher. */
export interface OutboxEntry {
  readonly batch: OutboxBatch;
  /** Indexes of the messages to publish (those not acknowledged yet). */
  readonly unacked: readonly number[];
}

interface Entry extends OutboxEntry {
  unacked: number[];
  sends: number;
  inflight: boolean;
  sentAt: number;
}

/** A batch that left the outbox, without its messages: enough to count a late ack or refusal. */
interface Settled {
  readings: number;
  values: Readonly<Record<string, number>>;
  acked: boolean;
  rejected: boolean;
}

export interface OutboxCounters {
  batches: { published: number; resent: number; acked: number; rejected: number };
  readings: { published: number; acked: number; rejected: number };
  /** Acknowledged values per metric. */
  values: Record<string, number>;
}

export type RejectOutcome = 'rejected' | 'again' | 'unknown';

/** How many settled batches are remembered for a refusal that follows the PUBACK (or the reverse). */
const RECENT_SETTLED = 256;

export class BatchOutbox {
  readonly #window: number;
  readonly #queue = new Map<OutboxBatch, Entry>();
  readonly #recent = new Map<string, Settled>();
  #inflight = 0;
  #pendingReadings = 0;
  readonly #counters: OutboxCounters = {
    batches: { published: 0, resent: 0, acked: 0, rejected: 0 },
    readings: { published: 0, acked: 0, rejected: 0 },
    values: {},
  };

  /** `window`: batches in flight at most. */
  constructor(window: number) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError('window must be ≥ 1');
    this.#window = window;
  }

  get pendingBatches(): number {
    return this.#queue.size;
  }

  get pendingReadings(): number {
    return this.#pendingReadings;
  }

  get inflight(): number {
    return this.#inflight;
  }

  add(batch: OutboxBatch): void {
    this.#queue.set(batch, {
      batch,
      unacked: batch.messages.map((_, i) => i),
      sends: 0,
      inflight: false,
      sentAt: 0,
    });
    this.#pendingReadings += batch.readings;
  }

  /**
   * The batches to publish now, oldest first, as many as the window has room for; they
   * count as in flight (sent at `now`) until acknowledged or {@link requeue}d.
   */
  takeDue(now: number): OutboxEntry[] {
    const due: OutboxEntry[] = [];
    for (const entry of this.#queue.values()) {
      if (this.#inflight >= this.#window) break;
      if (entry.inflight) continue;
      entry.inflight = true;
      entry.sentAt = now;
      this.#inflight++;
      if (entry.sends++ === 0) {
        this.#counters.batches.published++;
        this.#counters.readings.published += entry.batch.readings;
      } else {
        this.#counters.batches.resent++;
      }
      due.push(entry);
    }
    return due;
  }

  /**
   * Message `index` of the batch was acknowledged; returns true when that completed the
   * batch. A batch counts as acknowledged once, even if a copy sent again is acked too, and
   * even after a refusal that came before its PUBACK.
   */
  ack(batch: OutboxBatch, index: number): boolean {
    const entry = this.#queue.get(batch);
    if (entry === undefined) {
      // Already settled: acked before (a copy), or refused before its PUBACK came.
      const settled = batch.seq === undefined ? undefined : this.#recent.get(seqKey(batch.seq));
      if (settled === undefined || settled.acked) return false;
      settled.acked = true;
      this.#countAcked(batch);
      return true;
    }
    const at = entry.unacked.indexOf(index);
    if (at >= 0) entry.unacked.splice(at, 1);
    if (entry.unacked.length > 0) return false;
    this.#countAcked(batch);
    this.#settle(entry, { acked: true, rejected: false });
    return true;
  }

  /** The connection ended: whatever was in flight goes out again on the next one. */
  requeue(): void {
    for (const entry of this.#queue.values()) entry.inflight = false;
    this.#inflight = 0;
  }

  /** When the oldest batch in flight was sent, if any is. */
  oldestInflightSentAt(): number | undefined {
    let oldest: number | undefined;
    for (const entry of this.#queue.values()) {
      if (entry.inflight && (oldest === undefined || entry.sentAt < oldest)) oldest = entry.sentAt;
    }
    return oldest;
  }

  /**
   * The service refused the batch with these record numbers for good. It leaves the outbox
   * (no resending) and counts as rejected once: a copy sent again is refused again.
   */
  reject(seq: SeqRange): RejectOutcome {
    const key = seqKey(seq);
    let settled = this.#recent.get(key);
    if (settled === undefined) {
      for (const pending of this.#queue.values()) {
        if (pending.batch.seq !== undefined && seqKey(pending.batch.seq) === key) {
          settled = this.#settle(pending, { acked: false, rejected: false });
          break;
        }
      }
    }
    if (settled === undefined) return 'unknown';
    if (settled.rejected) return 'again';
    settled.rejected = true;
    this.#counters.batches.rejected++;
    this.#counters.readings.rejected += settled.readings;
    return 'rejected';
  }

  counters(): OutboxCounters {
    const c = this.#counters;
    return {
      batches: { ...c.batches },
      readings: { ...c.readings },
      values: { ...c.values },
    };
  }

  #countAcked(batch: OutboxBatch): void {
    const c = this.#counters;
    c.batches.acked++;
    c.readings.acked += batch.readings;
    for (const [metric, n] of Object.entries(batch.values)) {
      c.values[metric] = (c.values[metric] ?? 0) + n;
    }
  }

  /** Takes the entry out of the outbox; batches with a seq are remembered for a while. */
  #settle(entry: Entry, state: { acked: boolean; rejected: boolean }): Settled {
    this.#queue.delete(entry.batch);
    if (entry.inflight) this.#inflight--;
    this.#pendingReadings -= entry.batch.readings;
    const settled: Settled = {
      readings: entry.batch.readings,
      values: entry.batch.values,
      ...state,
    };
    const seq = entry.batch.seq;
    if (seq !== undefined) {
      this.#recent.set(seqKey(seq), settled);
      if (this.#recent.size > RECENT_SETTLED) {
        this.#recent.delete(this.#recent.keys().next().value!);
      }
    }
    return settled;
  }
}

function seqKey(seq: SeqRange): string {
  return `${seq[0]}-${seq[1]}`;
}
