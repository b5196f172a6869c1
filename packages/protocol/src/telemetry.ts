import { z } from 'zod';
import type { ProtocolError } from './errors.js';
import { MAX_RECORDS_PER_BATCH } from './limits.js';
import { senmlPackSchema, senmlParseError, tryParseSenmlPack } from './senml.js';

/**
 * PROTOCOL.md §5: `boot` is a random id chosen at each agent start: 8 to 32 characters of
 * base64url, which includes lowercase hex.
 */
export const BOOT_ID_PATTERN = /^[A-Za-z0-9_-]{8,32}$/;
export const bootIdSchema = z.string().regex(BOOT_ID_PATTERN, 'boot must be 8-32 base64url chars');

const sequenceNumber = z.number().int().nonnegative();

/**
 * PROTOCOL.md §5: the inclusive range `[from, to]` of per-boot record sequence numbers.
 * A batch never spans more numbers than it may carry records.
 */
export const seqRangeSchema = z
  .tuple([sequenceNumber, sequenceNumber])
  .refine(([from, to]) => from <= to, 'seq must be [from, to] with from <= to')
  .refine(
    ([from, to]) => to - from < MAX_RECORDS_PER_BATCH,
    `seq may span at most ${MAX_RECORDS_PER_BATCH} numbers`,
  );
export type SeqRange = z.infer<typeof seqRangeSchema>;

/**
 * PROTOCOL.md §5: the JSON payload of a signed telemetry batch. Unknown envelope fields
 * are dropped (additive changes stay compatible); records are strict SenML.
 */
export const telemetryBatchSchema = z.object({
  v: z.literal(1),
  boot: bootIdSchema,
  seq: seqRangeSchema,
  records: senmlPackSchema,
});
export type TelemetryBatch = z.infer<typeof telemetryBatchSchema>;

/**
 * Parses a batch payload (already JSON-parsed) or throws a ProtocolError whose code says
 * what was wrong: `too_many_records`, `senml_*` with the record index, or `payload_invalid`.
 */
export function parseTelemetryBatch(input: unknown): TelemetryBatch {
  const batch = tryParseTelemetryBatch(input);
  if (batch !== undefined) return batch;
  // Refused: the schema says why, with the codes, messages and paths callers rely on.
  const result = telemetryBatchSchema.safeParse(input);
  if (!result.success) throw senmlParseError(result.error, ['records']);
  return result.data;
}

/**
 * `telemetryBatchSchema` without zod (see `tryParseSenmlPack`): the same parsed batch for
 * every input the schema accepts, undefined for every input it refuses.
 */
export function tryParseTelemetryBatch(input: unknown): TelemetryBatch | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
  const { v, boot, seq, records } = input as Record<string, unknown>;
  if (v !== 1 || typeof boot !== 'string' || !BOOT_ID_PATTERN.test(boot)) return undefined;
  // A tuple refuses extra elements; a hole reads as undefined and is refused.
  if (!Array.isArray(seq) || seq.length !== 2) return undefined;
  const from: unknown = seq[0];
  const to: unknown = seq[1];
  if (!isSequenceNumber(from) || !isSequenceNumber(to)) return undefined;
  if (from > to || to - from >= MAX_RECORDS_PER_BATCH) return undefined;
  const pack = tryParseSenmlPack(records);
  if (pack === undefined) return undefined;
  return { v, boot, seq: [from, to], records: pack };
}

/** `z.number().int().nonnegative()`: int() means a safe integer. */
function isSequenceNumber(x: unknown): x is number {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

/**
 * PROTOCOL.md §8/§9: why a batch was refused for good, sent back in `telemetry.rejected`
 * and counted as `outpost_ingest_rejected_total{reason}`.
 */
export const TELEMETRY_REJECTION_REASONS = [
  'bad_signature', // JWS does not verify against the publisher's key
  'schema', // payload or SenML invalid
  'too_large', // over MAX_MESSAGE_BYTES
  'too_many_records', // over MAX_RECORDS_PER_BATCH
  'not_child', // a record names a device the gateway does not act for
  'unknown_device', // publisher or named device not in the registry
  'revoked', // publisher or named device revoked
  'policy', // refused by the device's registry policy (e.g. unsigned when signing is required)
] as const;
export type TelemetryRejectionReason = (typeof TELEMETRY_REJECTION_REASONS)[number];
export const telemetryRejectionReasonSchema = z.enum(TELEMETRY_REJECTION_REASONS);

/** The `telemetry.rejected` reason for a batch that failed with `err`. */
export function rejectionReasonOf(err: ProtocolError): TelemetryRejectionReason {
  return err.code === 'too_many_records' ? 'too_many_records' : 'schema';
}
