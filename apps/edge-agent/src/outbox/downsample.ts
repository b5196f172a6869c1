import type { DeviceId } from '@outpost/protocol/ids';
import {
  type ClockQuality,
  parseSenmlPack,
  type Reading,
  resolveSenml,
  toReadings,
} from '@outpost/protocol/senml';
import { batchBytes, type NewBatch, type OutboxBatch } from './outbox.js';
import { packReadings } from './pack.js';

/**
 * `downsample-oldest`: instead of dropping the oldest batches, merge them into coarser
 * aggregates. Pure: batches in, batches out.
 *
 * - Records are grouped by device, metric, unit and time window; the window of level n is
 *   `every × factor^(n-1)` (1 min, 10 min, 100 min by default).
 * - A number becomes the mean of its window, weighted by how many raw readings each input
 *   stood for (so merging aggregates again stays a true mean); a boolean or a string keeps
 *   the last value of its window. The aggregate's time is the (weighted) mean time of what
 *   it merged: two aggregates of one window made in different rounds, or an aggregate and
 *   a raw reading, then do not share a timestamp (a store keyed by time would keep one).
 * - `cq` is `unsynced` when any input was, `synced` when all were.
 * - The merged records reuse the `(boot, seq)` numbers of the inputs, first to last: each
 *   output batch takes a prefix of an input's range. Inputs are only ever batches that were
 *   never sent (the outbox guarantees it), so the ingest has seen none of these numbers and
 *   a merged batch can never be mistaken for a duplicate, nor duplicate what was stored.
 */
export interface DownsampleOptions {
  /** Window of level 1 in ms. */
  everyMs: number;
  /** Each level's window is this many times the previous one. */
  factor: number;
  /** Batches at this level are not merged again; when nothing else can merge, drop-oldest. */
  maxLevel: number;
}

export const DEFAULT_DOWNSAMPLE: DownsampleOptions = { everyMs: 60_000, factor: 10, maxLevel: 3 };

export interface Downsampler {
  readonly maxLevel: number;
  /**
   * Merges `group` (oldest first, all never sent) into batches at `level`. Returns undefined
   * when the result would not be smaller than the input.
   */
  merge(group: readonly OutboxBatch[], level: number): MergedBatch[] | undefined;
}

/** A merged batch, stored under the id of the input whose numbers it reuses. */
export interface MergedBatch extends NewBatch {
  readonly id: number;
  readonly level: number;
  readonly weights: readonly number[];
}

export function windowMs(options: DownsampleOptions, level: number): number {
  return options.everyMs * options.factor ** Math.max(0, level - 1);
}

interface Bucket {
  deviceId: string;
  metric: string;
  unit: string | undefined;
  /** Σ time × weight, for the mean time. */
  timeSum: number;
  kind: 'number' | 'other';
  sum: number;
  weight: number;
  last: Reading['value'];
  lastTime: number;
  unsynced: boolean;
  allSynced: boolean;
}

export function senmlDownsampler(
  publisherId: DeviceId,
  options: DownsampleOptions = DEFAULT_DOWNSAMPLE,
): Downsampler {
  return {
    maxLevel: options.maxLevel,
    merge(group, level) {
      const window = windowMs(options, level);
      const buckets = new Map<string, Bucket>();
      let inputRecords = 0;
      let inputBytes = 0;
      for (const batch of group) {
        const readings = decodePack(batch.pack, publisherId);
        inputRecords += readings.length;
        inputBytes += batch.bytes;
        readings.forEach((reading, i) => {
          add(buckets, reading, batch.weights?.[i] ?? 1, window);
        });
      }
      if (buckets.size >= inputRecords) return undefined;
      const aggregates = [...buckets.values()].sort(
        (a, b) => a.timeSum / a.weight - b.timeSum / b.weight,
      );
      const readings = aggregates.map(toReading);
      const weights = aggregates.map((b) => b.weight);
      let merged: MergedBatch[] | undefined;
      try {
        merged = assign(group, readings, weights, publisherId, level);
      } catch {
        // An aggregate SenML cannot carry (a mean that overflowed): leave the batches alone.
        return undefined;
      }
      if (merged === undefined) return undefined;
      const outputBytes = merged.reduce((n, b) => n + batchBytes(b), 0);
      return outputBytes < inputBytes ? merged : undefined;
    },
  };
}

/** Readings of a stored pack (times are absolute, so `now` plays no part). */
export function decodePack(pack: string, publisherId: DeviceId): Reading[] {
  return toReadings(resolveSenml(parseSenmlPack(JSON.parse(pack)), { now: 0 }), publisherId);
}

function add(buckets: Map<string, Bucket>, r: Reading, weight: number, window: number): void {
  const start = Math.floor((r.time * 1000) / window);
  const kind = typeof r.value === 'number' ? 'number' : 'other';
  const key = `${r.deviceId}\u0000${r.metric}\u0000${r.unit ?? ''}\u0000${kind}\u0000${start}`;
  let b = buckets.get(key);
  if (b === undefined) {
    b = {
      deviceId: r.deviceId,
      metric: r.metric,
      unit: r.unit,
      timeSum: 0,
      kind,
      sum: 0,
      weight: 0,
      last: r.value,
      lastTime: r.time,
      unsynced: false,
      allSynced: true,
    };
    buckets.set(key, b);
  }
  if (typeof r.value === 'number') b.sum += r.value * weight;
  b.timeSum += r.time * weight;
  b.weight += weight;
  if (r.time >= b.lastTime) {
    b.last = r.value;
    b.lastTime = r.time;
  }
  if (r.clock === 'unsynced') b.unsynced = true;
  if (r.clock !== 'synced') b.allSynced = false;
}

function toReading(b: Bucket): Reading {
  const clock: ClockQuality | undefined = b.unsynced
    ? 'unsynced'
    : b.allSynced
      ? 'synced'
      : undefined;
  const reading: Reading = {
    deviceId: b.deviceId,
    metric: b.metric,
    // Milliseconds, as stores keep them.
    time: Math.round((b.timeSum / b.weight) * 1000) / 1000,
    value: b.kind === 'number' ? b.sum / b.weight : b.last,
    backfilled: false,
    clock,
  };
  if (b.unit !== undefined) reading.unit = b.unit;
  return reading;
}

/**
 * Puts the aggregates into the inputs' `(boot, seq)` ranges, first input first: each input
 * lends its id and a prefix of its range to at most one output batch. Undefined when the
 * ranges run out (aggregates that would not fit one pack per range).
 */
function assign(
  group: readonly OutboxBatch[],
  readings: Reading[],
  weights: number[],
  publisherId: DeviceId,
  level: number,
): MergedBatch[] | undefined {
  const out: MergedBatch[] = [];
  let next = 0;
  for (const input of group) {
    if (next >= readings.length) break;
    const span = input.seq[1] - input.seq[0] + 1;
    // When the range's share does not fit one pack, the first piece stays here and the
    // rest moves on to the next input's range.
    const piece = packReadings(readings.slice(next, next + span), publisherId)[0]!;
    const count = piece.readings.length;
    out.push({
      id: input.id,
      boot: input.boot,
      seq: [input.seq[0], input.seq[0] + count - 1],
      createdMs: input.createdMs,
      records: count,
      pack: piece.pack,
      weights: weights.slice(next, next + count),
      level,
    });
    next += count;
  }
  return next < readings.length ? undefined : out;
}
