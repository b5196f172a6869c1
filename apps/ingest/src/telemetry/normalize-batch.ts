import { AppError, isProtocolError } from '@outpost/protocol/errors';
import {
  parseSenmlPack,
  type Reading,
  resolveReadings,
  type SenmlPack,
} from '@outpost/protocol/senml';
import {
  bootIdSchema,
  parseTelemetryBatch,
  rejectionReasonOf,
  seqRangeSchema,
  type TelemetryRejectionReason,
} from '@outpost/protocol/telemetry';
import type { TelemetryPoint } from './telemetry-store.js';

/**
 * From a verified payload to storable points (PROTOCOL.md §5). Pure: no I/O, time passed in.
 * Every refusal is a `TelemetryRejected` carrying the §9 reason.
 */

export class TelemetryRejected extends AppError {
  constructor(
    readonly reason: TelemetryRejectionReason,
    message: string,
    readonly batch: { boot?: string | undefined; seq?: [number, number] | undefined } = {},
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(
      reason === 'too_large' || reason === 'too_many_records'
        ? 'too_large'
        : reason === 'bad_signature'
          ? 'unauthenticated'
          : 'invalid',
      `telemetry_${reason}`,
      message,
      {
        ...options,
        details: { reason, ...batch, ...(options.details ?? {}) },
      },
    );
  }
}

export interface Publisher {
  deviceId: string;
  /** Devices the publisher may report for (a gateway's children). */
  children: ReadonlySet<string>;
}

export interface DecodedBatch {
  boot?: string;
  seq?: [number, number];
  readings: Reading[];
}

/** A signed batch payload `{v, boot, seq, records}` or a bare SenML pack. */
export function decodeBatch(
  json: unknown,
  signed: boolean,
  publisher: Publisher,
  nowS: number,
): DecodedBatch {
  let boot: string | undefined;
  let seq: [number, number] | undefined;
  try {
    let records: SenmlPack;
    if (signed) {
      // The batch schema already parsed the records: resolve them as they are.
      const batch = parseTelemetryBatch(json);
      boot = batch.boot;
      seq = [batch.seq[0], batch.seq[1]];
      records = batch.records;
    } else {
      records = parseSenmlPack(json);
    }
    const readings = resolveReadings(records, { now: nowS }, publisher.deviceId);
    return { ...(boot ? { boot } : {}), ...(seq ? { seq } : {}), readings };
  } catch (err) {
    if (isProtocolError(err)) {
      // A signed batch whose records are bad still names its boot and seq validly: the
      // reply must carry them so the sender can quarantine exactly this batch.
      const ref = boot ? { boot, seq } : signed ? salvageBatchRef(json) : {};
      throw new TelemetryRejected(rejectionReasonOf(err), err.message, ref, {
        cause: err,
        details: err.details ?? {},
      });
    }
    throw err;
  }
}

function salvageBatchRef(json: unknown): { boot?: string; seq?: [number, number] } {
  const envelope = json as { boot?: unknown; seq?: unknown } | null;
  const boot = bootIdSchema.safeParse(envelope?.boot);
  const seq = seqRangeSchema.safeParse(envelope?.seq);
  return boot.success && seq.success ? { boot: boot.data, seq: [seq.data[0], seq.data[1]] } : {};
}

/** Devices named by the readings that the publisher may not report for. */
export function foreignDevices(readings: readonly Reading[], publisher: Publisher): string[] {
  const foreign = new Set<string>();
  for (const r of readings) {
    if (r.deviceId !== publisher.deviceId && !publisher.children.has(r.deviceId))
      foreign.add(r.deviceId);
  }
  return [...foreign];
}

export function toPoints(
  readings: readonly Reading[],
  tagsOf: (deviceId: string) => Readonly<Record<string, string>>,
): TelemetryPoint[] {
  return readings.map((r) => {
    const point: TelemetryPoint = {
      device: r.deviceId,
      metric: r.metric,
      timeMs: Math.round(r.time * 1000),
      value: r.value,
      tags: tagsOf(r.deviceId),
    };
    if (r.unit !== undefined) point.unit = r.unit;
    if (r.backfilled) point.backfilled = true;
    if (r.clock === 'unsynced') point.unsynced = true;
    return point;
  });
}
