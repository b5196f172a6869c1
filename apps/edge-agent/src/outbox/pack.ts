import type { DeviceId } from '@outpost/protocol/ids';
import { MAX_MESSAGE_BYTES, MAX_RECORDS_PER_BATCH } from '@outpost/protocol/limits';
import { compressPack, type Reading } from '@outpost/protocol/senml';

/**
 * Largest pack kept in one outbox batch, counted with `bf: true` on every record. Signed,
 * the batch grows by a third (base64url) plus the header and signature; this keeps every
 * message under PROTOCOL.md §5's 256 KiB with room to spare.
 */
export const MAX_PACK_BYTES = Math.floor((MAX_MESSAGE_BYTES * 3) / 4) - 8 * 1024;
/** `,"bf":true` added to each record of a late batch. */
export const BACKFILL_BYTES_PER_RECORD = 10;

export interface Pack {
  /** JSON text of the SenML pack. */
  pack: string;
  /** The readings in it, in order. */
  readings: Reading[];
}

/** Cost of a pack against MAX_PACK_BYTES: its JSON plus a `bf` on each record. */
export function packCost(pack: string, records: number): number {
  return Buffer.byteLength(pack, 'utf8') + records * BACKFILL_BYTES_PER_RECORD;
}

/**
 * Compresses readings into packs (`compressPack`, RFC 8428 base name and time), split so
 * that each holds at most `maxRecords` records (and never more than PROTOCOL.md §5 allows)
 * and at most MAX_PACK_BYTES. Throws a ProtocolError for a reading SenML cannot carry;
 * callers filter those out first with `carriable`.
 */
export function packReadings(
  readings: readonly Reading[],
  publisherId: DeviceId,
  maxRecords = MAX_RECORDS_PER_BATCH,
): Pack[] {
  const limit = Math.max(1, Math.min(maxRecords, MAX_RECORDS_PER_BATCH));
  const out: Pack[] = [];
  for (let start = 0; start < readings.length; start += limit) {
    split(readings.slice(start, start + limit), publisherId, out);
  }
  return out;
}

function split(readings: Reading[], publisherId: DeviceId, out: Pack[]): void {
  const pack = JSON.stringify(compressPack(readings, publisherId));
  if (packCost(pack, readings.length) <= MAX_PACK_BYTES || readings.length === 1) {
    out.push({ pack, readings });
    return;
  }
  const half = Math.ceil(readings.length / 2);
  split(readings.slice(0, half), publisherId, out);
  split(readings.slice(half), publisherId, out);
}

/** True when `compressPack` can carry the reading (name, absolute time, finite value). */
export function carriable(reading: Reading, publisherId: DeviceId): boolean {
  try {
    compressPack([reading], publisherId);
    return true;
  } catch {
    return false;
  }
}
