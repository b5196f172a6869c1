import type { SenmlRecord } from '@outpost/protocol/senml';
import type { TelemetryBatch } from '@outpost/protocol/telemetry';
import { signBatch } from '@outpost/signing/batch';
import type { SigningKey } from '@outpost/signing/sign';
import type { OutboxBatch } from '../outbox/outbox.js';

/**
 * PROTOCOL.md §5: the payload of an outbox batch as it is sent now. `(boot, seq)` are the
 * ones the batch got when it entered the outbox, so a resend is a duplicate to the ingest;
 * a late batch marks every record `bf: true`.
 */
export function batchPayload(batch: OutboxBatch, backfilled: boolean): TelemetryBatch {
  let records = JSON.parse(batch.pack) as SenmlRecord[];
  if (backfilled) records = records.map((record) => ({ ...record, bf: true }));
  return { v: 1, boot: batch.boot, seq: [batch.seq[0], batch.seq[1]], records };
}

/** Signs with the gateway key, imported once at start (`importSigningKey`). */
export function signOutboxBatch(
  key: SigningKey,
  batch: OutboxBatch,
  backfilled: boolean,
): Promise<string> {
  return signBatch(key, batchPayload(batch, backfilled));
}

/**
 * PROTOCOL.md §5 `bf`: a batch is late when it waited in the outbox longer than
 * `backfillAfterMs`, or when it is sent again (an earlier send was not acknowledged).
 */
export function isBackfill(batch: OutboxBatch, nowMs: number, backfillAfterMs: number): boolean {
  return batch.attempts > 0 || nowMs - batch.createdMs > backfillAfterMs;
}
