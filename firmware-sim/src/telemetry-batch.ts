import { MAX_RECORDS_PER_BATCH } from '@outpost/protocol/limits';
import { compressPack, type Reading, type SenmlPack } from '@outpost/protocol/senml';
import type { SeqRange } from '@outpost/protocol/telemetry';

/**
 * PROTOCOL.md §5 telemetry batches of a simulated device (pure: no clock, no I/O). Every
 * reading carries one value of each of the device's metrics, so a batch of `n` readings
 * holds `n × metrics` records and numbers them with the next `seq` range of this boot.
 */

/** One reading: the values of the device's metrics at one time (epoch ms, device clock). */
export interface TimedReading {
  timeMs: number;
  values: readonly (readonly [metric: string, value: number])[];
}

/** The JSON payload of a signed batch (PROTOCOL.md §5); signed by the caller. */
export interface BatchEnvelope {
  v: 1;
  boot: string;
  seq: SeqRange;
  records: SenmlPack;
}

export interface BuiltBatch {
  /** Inclusive record numbers of this boot. */
  seq: SeqRange;
  readings: number;
  /** Values per metric. */
  values: Record<string, number>;
  /** What to publish: the envelope to sign, or a bare SenML pack (`payloadSigning: optional`). */
  body: BatchEnvelope | SenmlPack;
}

/**
 * RFC 8428 §4.4: a field ending in `_` must be understood; the ingest understands none, so
 * it refuses the batch (`schema`) and, the envelope being valid, names it in its reply.
 */
const MUST_UNDERSTAND = 'sim_';

export class BatchBuilder {
  readonly #deviceId: string;
  readonly #boot: string;
  readonly #signed: boolean;
  #nextSeq = 1;

  constructor(deviceId: string, options: { boot: string; signed: boolean }) {
    this.#deviceId = deviceId;
    this.#boot = options.boot;
    this.#signed = options.signed;
  }

  get boot(): string {
    return this.#boot;
  }

  /** The first record number the next batch gets. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /**
   * Builds the next batch; `broken` adds a field the service must refuse. Throws when the
   * readings do not fit one batch (MAX_RECORDS_PER_BATCH records).
   */
  build(readings: readonly TimedReading[], broken = false): BuiltBatch {
    const values: Record<string, number> = {};
    const flat: Reading[] = [];
    for (const reading of readings) {
      for (const [metric, value] of reading.values) {
        values[metric] = (values[metric] ?? 0) + 1;
        flat.push({
          deviceId: this.#deviceId,
          metric,
          time: reading.timeMs / 1000,
          value,
          backfilled: false,
          clock: undefined,
        });
      }
    }
    if (flat.length > MAX_RECORDS_PER_BATCH) {
      throw new RangeError(`a batch holds at most ${MAX_RECORDS_PER_BATCH} records`);
    }
    const records = compressPack(flat, this.#deviceId);
    if (broken) (records[0] as Record<string, unknown>)[MUST_UNDERSTAND] = 1;
    const seq: SeqRange = [this.#nextSeq, this.#nextSeq + flat.length - 1];
    this.#nextSeq += flat.length;
    return {
      seq,
      readings: readings.length,
      values,
      body: this.#signed ? { v: 1, boot: this.#boot, seq, records } : records,
    };
  }
}
