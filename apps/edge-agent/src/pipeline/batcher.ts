import { durationSchema } from '@outpost/protocol/duration';
import { MAX_MESSAGE_BYTES, MAX_RECORDS_PER_BATCH } from '@outpost/protocol/limits';
import type { Reading } from '@outpost/protocol/senml';
import { z } from 'zod';

/**
 * Cuts readings into batches (PROTOCOL.md §5) by record count, age and size. Pure: the
 * caller passes `now` (ms; a monotonic clock is best, a wall clock works) and calls
 * {@link Batcher.tick} at {@link Batcher.nextDueAt}.
 *
 * Size: each batch is signed as a compact JWS, whose base64url payload is 4/3 of the JSON,
 * and the ingest refuses messages over 256 KiB (PROTOCOL.md §5). So the JSON payload must
 * stay under ~191 KiB; the default budget is 180 KiB. The batcher counts the exact bytes
 * `compressPack` (`@outpost/protocol/senml`) will write for the records, plus
 * {@link ENVELOPE_RESERVE_BYTES} for `{"v":1,"boot":..,"seq":[..],"records":[..]}`.
 */

const UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  kib: 1024,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** `180KiB`, `2MiB`, `500kB`, or a number of bytes. */
export const byteSizeSchema = z
  .union([z.number().int().nonnegative(), z.string().max(32)])
  .transform((value, ctx) => {
    if (typeof value === 'number') return value;
    const m = /^(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?$/i.exec(value.trim());
    const bytes = m === null ? Number.NaN : Number(m[1]) * UNIT_BYTES[(m[2] ?? 'b').toLowerCase()]!;
    if (!Number.isSafeInteger(Math.round(bytes))) {
      ctx.addIssue({ code: 'custom', message: 'expected a size such as 180KiB, 2MiB or 4096' });
      return z.NEVER;
    }
    return Math.round(bytes);
  });

/** Room kept for the batch envelope around the records. */
export const ENVELOPE_RESERVE_BYTES = 160;

/** The largest JSON payload whose JWS fits `messageBytes` (header and signature ≤ 1 KiB). */
export function jsonBudgetForJws(messageBytes: number): number {
  return Math.floor(((messageBytes - 1024) * 3) / 4);
}

export const DEFAULT_BATCH_MAX_BYTES = 180 * 1024;

export const batchConfigSchema = z
  .strictObject({
    maxRecords: z.number().int().min(1).max(MAX_RECORDS_PER_BATCH).default(500),
    maxAge: durationSchema.default(2_000),
    /** Budget for the batch's JSON payload (before signing). */
    maxBytes: byteSizeSchema.default(DEFAULT_BATCH_MAX_BYTES),
  })
  .superRefine((c, ctx) => {
    if (c.maxBytes < 4096) {
      ctx.addIssue({ code: 'custom', path: ['maxBytes'], message: 'maxBytes is at least 4KiB' });
    }
    if (c.maxBytes > jsonBudgetForJws(MAX_MESSAGE_BYTES)) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxBytes'],
        message: `a signed batch of ${c.maxBytes} bytes would exceed the ${MAX_MESSAGE_BYTES}-byte message limit`,
      });
    }
  })
  .prefault({});
export type BatchConfig = z.output<typeof batchConfigSchema>;

export type BatchCut = 'records' | 'bytes' | 'age' | 'clock' | 'flush';

export interface Batch {
  readings: Reading[];
  /** The JSON size of the records as `compressPack` writes them, plus the envelope reserve. */
  bytes: number;
  /** `now` when the first reading was added. */
  openedAt: number;
  /** Why the batch was cut. */
  cut: BatchCut;
  /** The isolated device whose batch of its own this is (BatcherOptions.isolated). */
  device?: string;
}

const encoder = new TextEncoder();

/** Bytes of `JSON.stringify(text)` in UTF-8. */
function jsonStringBytes(text: string): number {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) {
      plain = false;
      break;
    }
  }
  return plain ? text.length + 2 : encoder.encode(JSON.stringify(text)).length;
}

function numberBytes(value: number): number {
  return String(value).length;
}

/**
 * Mirrors `compressPack`: a base name `<device>/` whenever the device changes (`""` for
 * the publisher), a base time whenever the offset would not add back exactly.
 */
class PackSizer {
  #bn: string | undefined;
  #bt: number | undefined;
  readonly #publisherId: string | undefined;

  constructor(publisherId: string | undefined) {
    this.#publisherId = publisherId;
  }

  reset(): void {
    this.#bn = undefined;
    this.#bt = undefined;
  }

  /** Bytes of the record `reading` becomes, with its separating comma; updates the bases. */
  add(reading: Reading): number {
    let fields = 0;
    let bytes = 2; // {}
    const prefix = reading.deviceId === this.#publisherId ? '' : `${reading.deviceId}/`;
    if (prefix !== (this.#bn ?? '')) {
      bytes += 7 + prefix.length; // "bn":"…"
      fields++;
    }
    this.#bn = prefix;
    const offset = this.#bt === undefined ? Number.NaN : reading.time - this.#bt;
    if (this.#bt !== undefined && this.#bt + offset === reading.time) {
      if (offset !== 0) {
        bytes += 4 + numberBytes(offset); // "t":…
        fields++;
      }
    } else {
      bytes += 5 + numberBytes(reading.time); // "bt":…
      fields++;
      this.#bt = reading.time;
    }
    bytes += 6 + reading.metric.length; // "n":"…"
    fields++;
    if (reading.unit !== undefined) {
      bytes += 4 + jsonStringBytes(reading.unit);
      fields++;
    }
    const { value } = reading;
    if (typeof value === 'number') bytes += 4 + numberBytes(value);
    else if (typeof value === 'boolean') bytes += value ? 9 : 10;
    else bytes += 5 + jsonStringBytes(value);
    fields++;
    if (reading.backfilled) {
      bytes += 9; // "bf":true
      fields++;
    }
    if (reading.clock !== undefined) {
      bytes += 7 + reading.clock.length; // "cq":"…"
      fields++;
    }
    return bytes + (fields - 1) + 1; // commas between fields, and after the record
  }
}

export interface BatcherOptions {
  /** The gateway's own id: its readings take no base name (PROTOCOL.md §5). */
  publisherId?: string;
  /**
   * Devices whose readings go in batches of their own, never mixed with other devices'
   * readings: those the ingest refused as not children of the gateway, since one such
   * reading gets a whole batch refused (see uplink/child-standing.ts). Asked once for each
   * run of readings of one device.
   */
  isolated?: (deviceId: string) => boolean;
}

/** One open batch: the shared one, or an isolated device's. */
class Lane {
  readings: Reading[] = [];
  bytes = ENVELOPE_RESERVE_BYTES;
  openedAt = 0;
  readonly sizer: PackSizer;
  /** The isolated device, for a lane apart. */
  readonly device: string | undefined;

  constructor(publisherId: string | undefined, device?: string) {
    this.sizer = new PackSizer(publisherId);
    this.device = device;
  }
}

export class Batcher {
  readonly #maxRecords: number;
  readonly #maxAge: number;
  readonly #maxBytes: number;
  readonly #publisherId: string | undefined;
  readonly #isolated: ((deviceId: string) => boolean) | undefined;
  readonly #shared: Lane;
  /**
   * Open batches of isolated devices. A lane is dropped once cut empty, so there are never
   * more than the isolated devices with readings younger than `maxAge`.
   */
  readonly #apart = new Map<string, Lane>();

  constructor(config: BatchConfig, options: BatcherOptions = {}) {
    this.#maxRecords = config.maxRecords;
    this.#maxAge = config.maxAge;
    this.#maxBytes = config.maxBytes;
    this.#publisherId = options.publisherId;
    this.#isolated = options.isolated;
    this.#shared = new Lane(options.publisherId);
  }

  /** Readings waiting in open batches. */
  get pending(): number {
    let n = this.#shared.readings.length;
    for (const lane of this.#apart.values()) n += lane.readings.length;
    return n;
  }

  /**
   * Adds readings in order; returns the batches this cut. A batch that was already due by
   * age (or whose clock went backwards) is cut before the new readings join.
   */
  add(readings: readonly Reading[], now: number): Batch[] {
    const batches = this.tick(now);
    let lane = this.#shared;
    let device: string | undefined;
    for (const reading of readings) {
      if (this.#isolated !== undefined && reading.deviceId !== device) {
        device = reading.deviceId;
        lane = this.#isolated(device) ? this.#laneApart(device) : this.#shared;
      }
      if (lane.readings.length === 0) lane.openedAt = now;
      let size = lane.sizer.add(reading);
      if (lane.readings.length > 0 && lane.bytes + size > this.#maxBytes) {
        batches.push(this.#cut(lane, 'bytes'));
        lane.openedAt = now;
        size = lane.sizer.add(reading);
      }
      lane.readings.push(reading);
      lane.bytes += size;
      if (lane.readings.length >= this.#maxRecords) batches.push(this.#cut(lane, 'records'));
    }
    return batches;
  }

  /** Cuts each open batch once it is `maxAge` old, or at once if `now` went backwards. */
  tick(now: number): Batch[] {
    const batches: Batch[] = [];
    this.#tickLane(this.#shared, now, batches);
    for (const [device, lane] of this.#apart) {
      this.#tickLane(lane, now, batches);
      if (lane.readings.length === 0) this.#apart.delete(device);
    }
    return batches;
  }

  /** Cuts whatever is open (shutdown). */
  flush(): Batch[] {
    const batches: Batch[] = [];
    for (const lane of [this.#shared, ...this.#apart.values()]) {
      if (lane.readings.length > 0) batches.push(this.#cut(lane, 'flush'));
    }
    this.#apart.clear();
    return batches;
  }

  nextDueAt(): number | undefined {
    let due: number | undefined;
    for (const lane of [this.#shared, ...this.#apart.values()]) {
      if (lane.readings.length === 0) continue;
      const at = lane.openedAt + this.#maxAge;
      if (due === undefined || at < due) due = at;
    }
    return due;
  }

  #laneApart(device: string): Lane {
    let lane = this.#apart.get(device);
    if (lane === undefined) {
      lane = new Lane(this.#publisherId, device);
      this.#apart.set(device, lane);
    }
    return lane;
  }

  #tickLane(lane: Lane, now: number, out: Batch[]): void {
    if (lane.readings.length === 0) return;
    if (now < lane.openedAt) out.push(this.#cut(lane, 'clock'));
    else if (now - lane.openedAt >= this.#maxAge) out.push(this.#cut(lane, 'age'));
  }

  #cut(lane: Lane, cut: BatchCut): Batch {
    // The last record's trailing comma is not written.
    const batch: Batch = {
      readings: lane.readings,
      bytes: lane.bytes - 1,
      openedAt: lane.openedAt,
      cut,
    };
    if (lane.device !== undefined) batch.device = lane.device;
    lane.readings = [];
    lane.bytes = ENVELOPE_RESERVE_BYTES;
    lane.sizer.reset();
    return batch;
  }
}
