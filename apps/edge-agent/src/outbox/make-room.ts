import type { Downsampler, MergedBatch } from './downsample.js';
import type { OutboxBatch, WhenFull } from './outbox.js';

/**
 * The `whenFull` policies, written once over the few storage operations every outbox
 * implementation offers inside its own transaction.
 */
export interface RoomStore {
  pendingBytes(): number;
  /**
   * Pending batches in id order with `id > afterId`, at most `limit`. With `level`, only
   * batches never handed to the uplink, at that level.
   */
  scan(afterId: number, limit: number, level?: number): OutboxBatch[];
  /** Levels of never-sent batches, ascending. */
  unsentLevels(): number[];
  remove(batch: OutboxBatch): void;
  /** Removes `inputs` and stores `merged` (each under the id of one of the inputs). */
  replace(inputs: readonly OutboxBatch[], merged: readonly MergedBatch[]): void;
}

export interface RoomOutcome {
  ok: boolean;
  droppedRecords: number;
  downsampledRecords: number;
  aggregateRecords: number;
}

/** Records merged at most in one round: bounds the memory a merge takes. */
const GROUP_RECORDS = 10_000;
const GROUP_BATCHES = 64;

/**
 * Frees space until `pendingBytes() + incomingBytes <= maxBytes`, as `whenFull` says.
 * `reject-new` frees nothing. `downsample-oldest` merges the oldest never-sent batches,
 * lowest level first, and drops the oldest batches only when nothing is left to merge.
 */
export function makeRoom(
  store: RoomStore,
  incomingBytes: number,
  maxBytes: number,
  whenFull: WhenFull,
  downsampler: Downsampler | undefined,
): RoomOutcome {
  const outcome: RoomOutcome = {
    ok: true,
    droppedRecords: 0,
    downsampledRecords: 0,
    aggregateRecords: 0,
  };
  const target = maxBytes - incomingBytes;
  if (store.pendingBytes() <= target) return outcome;
  if (whenFull === 'reject-new' || target < 0) {
    outcome.ok = false;
    return outcome;
  }
  if (whenFull === 'downsample-oldest' && downsampler !== undefined) {
    downsample(store, target, maxBytes, downsampler, outcome);
  }
  while (store.pendingBytes() > target) {
    const [oldest] = store.scan(0, 1);
    if (oldest === undefined) break;
    store.remove(oldest);
    outcome.droppedRecords += oldest.records;
  }
  outcome.ok = store.pendingBytes() <= target;
  return outcome;
}

/**
 * Merges only as much as needed, oldest first: a round takes batches worth twice the excess
 * (at least a sixteenth of the outbox), so recent readings stay raw as long as possible.
 */
function downsample(
  store: RoomStore,
  target: number,
  maxBytes: number,
  downsampler: Downsampler,
  outcome: RoomOutcome,
): void {
  for (const level of store.unsentLevels()) {
    if (level >= downsampler.maxLevel) break;
    let afterId = 0;
    while (store.pendingBytes() > target) {
      const wanted = Math.max(2 * (store.pendingBytes() - target), maxBytes / 16);
      const group = takeGroup(store.scan(afterId, GROUP_BATCHES, level), wanted);
      if (group.length === 0) break;
      afterId = group[group.length - 1]!.id;
      const merged = downsampler.merge(group, level + 1);
      if (merged === undefined) continue;
      store.replace(group, merged);
      outcome.downsampledRecords += group.reduce((n, b) => n + b.records, 0);
      outcome.aggregateRecords += merged.reduce((n, b) => n + b.records, 0);
    }
    if (store.pendingBytes() <= target) return;
  }
}

function takeGroup(batches: OutboxBatch[], wantedBytes: number): OutboxBatch[] {
  const group: OutboxBatch[] = [];
  let records = 0;
  let bytes = 0;
  for (const batch of batches) {
    if (group.length > 0 && (records + batch.records > GROUP_RECORDS || bytes >= wantedBytes)) {
      break;
    }
    group.push(batch);
    records += batch.records;
    bytes += batch.bytes;
  }
  return group;
}
