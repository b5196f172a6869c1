import { z } from 'zod';
import { ProtocolError, payloadIssues } from './errors.js';
import { type DeviceId, isDeviceId, isMetricName, type MetricName } from './ids.js';
import {
  MAX_RECORDS_PER_BATCH,
  MAX_SENML_NAME_LENGTH,
  MAX_SENML_UNIT_LENGTH,
  MAX_STRING_VALUE_LENGTH,
} from './limits.js';
import { textSchema } from './text.js';

/** RFC 8428 §4.4: the SenML version this code understands (the default `bver`). */
export const SENML_VERSION = 10;

/** RFC 8428 §4.5.3: resolved times below 2**28 are relative to "now"; at or above, absolute. */
export const SENML_RELATIVE_TIME_LIMIT = 2 ** 28;

/** PROTOCOL.md §5 extension `cq`: how far the device trusts its clock. */
export const CLOCK_QUALITIES = ['synced', 'unsynced'] as const;
export type ClockQuality = (typeof CLOCK_QUALITIES)[number];

const name = textSchema(MAX_SENML_NAME_LENGTH);
const unit = textSchema(MAX_SENML_UNIT_LENGTH, 1);
const stringValue = textSchema(MAX_STRING_VALUE_LENGTH);

/**
 * One SenML record (RFC 8428 §4, JSON labels of §5) plus the PROTOCOL.md §5 extensions
 * `bf` and `cq`. Strict: RFC 8428 §4.4 lets a receiver ignore unknown fields that do not
 * end in `_`, but we refuse every unknown field so a typo never silently drops data; a
 * must-understand field (ending in `_`) is refused with its own code. `z.number()` refuses
 * NaN and ±Infinity, which matters for records built in code rather than parsed from JSON.
 */
export const senmlRecordSchema = z.strictObject({
  bn: name.optional(),
  bt: z.number().optional(),
  bu: unit.optional(),
  bv: z.number().optional(),
  bs: z.number().optional(),
  bver: z.number().int().positive().optional(),
  n: name.optional(),
  u: unit.optional(),
  v: z.number().optional(),
  vs: stringValue.optional(),
  vb: z.boolean().optional(),
  // RFC 8428 §5: base64url without padding in JSON; bounded like `vs`.
  vd: z
    .string()
    .max(MAX_STRING_VALUE_LENGTH)
    .regex(/^[A-Za-z0-9_-]*$/, 'must be base64url without padding')
    .optional(),
  s: z.number().optional(),
  t: z.number().optional(),
  ut: z.number().nonnegative().optional(),
  bf: z.boolean().optional(),
  cq: z.enum(CLOCK_QUALITIES).optional(),
});
export type SenmlRecord = z.infer<typeof senmlRecordSchema>;

/**
 * A SenML pack: 1 to MAX_RECORDS_PER_BATCH records. The length is checked before any
 * record is parsed, so an oversized pack costs nothing to refuse.
 */
export const senmlPackSchema = z
  .array(z.unknown())
  .min(1)
  .max(MAX_RECORDS_PER_BATCH)
  .pipe(z.array(senmlRecordSchema));
export type SenmlPack = z.infer<typeof senmlPackSchema>;

/**
 * Turns a failed parse of a pack (at `packPath` inside the parsed value) into the most
 * specific ProtocolError: `too_many_records`, `senml_must_understand`, `senml_invalid`,
 * or `payload_invalid` when the failure lies outside the pack.
 */
export function senmlParseError(
  error: z.ZodError,
  packPath: readonly PropertyKey[] = [],
): ProtocolError {
  const issues = payloadIssues(error);
  const inPack = (path: readonly PropertyKey[]) =>
    path.length >= packPath.length && packPath.every((key, i) => path[i] === key);
  for (const issue of error.issues) {
    if (issue.code === 'too_big' && issue.path.length === packPath.length && inPack(issue.path)) {
      return new ProtocolError(
        'too_many_records',
        `a pack carries at most ${MAX_RECORDS_PER_BATCH} records`,
        { details: { issues, limit: MAX_RECORDS_PER_BATCH } },
      );
    }
  }
  // A must-understand field anywhere outranks other failures: it says what the sender needs.
  const mustUnderstand = error.issues.find(
    (issue) =>
      issue.code === 'unrecognized_keys' &&
      inPack(issue.path) &&
      issue.keys.some((key) => key.endsWith('_')),
  );
  const first = mustUnderstand ?? error.issues[0];
  const index = first?.path[packPath.length];
  if (first === undefined || !inPack(first.path) || typeof index !== 'number') {
    const where = issues[0]?.path || '(root)';
    return new ProtocolError(
      packPath.length === 0 ? 'senml_invalid' : 'payload_invalid',
      `${where}: ${issues[0]?.message ?? 'invalid'}`,
      { details: { issues } },
    );
  }
  return new ProtocolError(
    mustUnderstand ? 'senml_must_understand' : 'senml_invalid',
    `record ${index}: ${mustUnderstand ? 'unsupported must-understand field: ' : ''}${first.message}`,
    { details: { index, issues } },
  );
}

/** Parses a bare SenML pack (PROTOCOL.md §5 unsigned form) or throws a ProtocolError. */
export function parseSenmlPack(input: unknown): SenmlPack {
  const result = senmlPackSchema.safeParse(input);
  if (!result.success) throw senmlParseError(result.error);
  return result.data;
}

interface ResolvedRecordFields {
  /** Position of the source record in the pack, for error reports. */
  index: number;
  /** Resolved name: `bn` + `n` (RFC 8428 §4.5.1). */
  n: string;
  /** Absolute time in epoch seconds (RFC 8428 §4.5.3). */
  t: number;
  u?: string;
  ut?: number;
  bf?: boolean;
  cq?: ClockQuality;
}

/** RFC 8428 §4.6 resolved record: no base fields, exactly one value field. */
export type ResolvedRecord = ResolvedRecordFields &
  ({ v: number } | { vs: string } | { vb: boolean } | { vd: string } | { s: number });

export interface ResolveOptions {
  /** The receiver's current time in epoch seconds; relative times are added to it. */
  now: number;
}

/** RFC 8428 §4.5.1: allowed characters of a resolved name, starting with a letter or digit. */
const RESOLVED_NAME = /^[A-Za-z0-9][A-Za-z0-9:./_-]*$/;

/** True for a record without any regular field: it only sets base fields. */
function setsOnlyBaseFields(record: SenmlRecord): boolean {
  return (
    record.n === undefined &&
    record.u === undefined &&
    record.v === undefined &&
    record.vs === undefined &&
    record.vb === undefined &&
    record.vd === undefined &&
    record.s === undefined &&
    record.t === undefined &&
    record.ut === undefined &&
    record.bf === undefined &&
    record.cq === undefined
  );
}

function fail(
  code: 'senml_name' | 'senml_time' | 'senml_value' | 'senml_version',
  index: number,
  message: string,
): never {
  throw new ProtocolError(code, `record ${index}: ${message}`, { details: { index } });
}

/**
 * Resolves a validated pack (RFC 8428 §4.6): every record gets its full name, an absolute
 * time, its unit and exactly one value.
 *
 * - Base fields (`bn bt bu bv bs bver`) apply to their record and every later one until
 *   the next record that sets the same base field (RFC 8428 §4.1).
 * - A record holding only base fields sets them and yields no resolved record
 *   (RFC 8428 §5.1.7 starts with such a record).
 * - Time is `bt + t`; a sum below 2**28 is relative to `now` (RFC 8428 §4.5.3).
 * - Value: `v` gets `bv` added, `s` gets `bs` added (§4.5.4). A record without a value
 *   field takes `bv` as `v` (or else `bs` as `s`). One value field per record: a record
 *   with two of `v vs vb vd s` is refused, even `v` with `s`, which RFC 8428 would allow.
 * - `bf` and `cq` are per record: they are not base fields and never carry over.
 * - `bver` above 10, or two different `bver` in one pack, is refused (RFC 8428 §4.4).
 * - Records keep pack order. RFC 8428 §4.6 wants a resolved *pack* in chronological
 *   order; sort by `t` before emitting one.
 */
export function resolveSenml(
  pack: readonly SenmlRecord[],
  options: ResolveOptions,
): ResolvedRecord[] {
  if (pack.length > MAX_RECORDS_PER_BATCH) {
    throw new ProtocolError(
      'too_many_records',
      `a pack carries at most ${MAX_RECORDS_PER_BATCH} records`,
      {
        details: { limit: MAX_RECORDS_PER_BATCH },
      },
    );
  }
  const { now } = options;
  let bn = '';
  let bt = 0;
  let bu: string | undefined;
  let bv: number | undefined;
  let bs: number | undefined;
  let bver: number | undefined;
  const resolved: ResolvedRecord[] = [];

  for (let index = 0; index < pack.length; index++) {
    const record = pack[index]!;
    if (record.bver !== undefined) {
      if (record.bver > SENML_VERSION) {
        fail('senml_version', index, `unsupported SenML version ${record.bver}`);
      }
      if (bver !== undefined && record.bver !== bver) {
        fail('senml_version', index, 'all records of a pack must have the same version');
      }
      bver = record.bver;
    }
    if (record.bn !== undefined) bn = record.bn;
    if (record.bt !== undefined) bt = record.bt;
    if (record.bu !== undefined) bu = record.bu;
    if (record.bv !== undefined) bv = record.bv;
    if (record.bs !== undefined) bs = record.bs;
    if (setsOnlyBaseFields(record)) continue;

    const n = bn + (record.n ?? '');
    if (n.length === 0) fail('senml_name', index, 'record has no name');
    if (n.length > MAX_SENML_NAME_LENGTH) fail('senml_name', index, 'resolved name is too long');
    if (!RESOLVED_NAME.test(n)) {
      fail('senml_name', index, 'resolved name must match ^[A-Za-z0-9][A-Za-z0-9:./_-]*$');
    }

    const sum = bt + (record.t ?? 0);
    const t = sum < SENML_RELATIVE_TIME_LIMIT ? now + sum : sum;
    if (!Number.isFinite(t)) fail('senml_time', index, 'resolved time is not a finite number');

    const out = resolveValue(record, index, n, t, bv, bs);
    const u = record.u ?? bu;
    if (u !== undefined) out.u = u;
    if (record.ut !== undefined) out.ut = record.ut;
    if (record.bf !== undefined) out.bf = record.bf;
    if (record.cq !== undefined) out.cq = record.cq;
    resolved.push(out);
  }
  return resolved;
}

/** Builds the record around its one value; object literals, not spreads, on this hot path. */
function resolveValue(
  record: SenmlRecord,
  index: number,
  n: string,
  t: number,
  bv: number | undefined,
  bs: number | undefined,
): ResolvedRecord {
  const { v, vs, vb, vd, s } = record;
  const present =
    Number(v !== undefined) +
    Number(vs !== undefined) +
    Number(vb !== undefined) +
    Number(vd !== undefined) +
    Number(s !== undefined);
  if (present > 1) fail('senml_value', index, 'a record carries exactly one of v, vs, vb, vd, s');
  if (v !== undefined) return { index, n, t, v: bv === undefined ? v : finite(bv + v, index) };
  if (vs !== undefined) return { index, n, t, vs };
  if (vb !== undefined) return { index, n, t, vb };
  if (vd !== undefined) return { index, n, t, vd };
  if (s !== undefined) return { index, n, t, s: bs === undefined ? s : finite(bs + s, index) };
  if (bv !== undefined) return { index, n, t, v: bv };
  if (bs !== undefined) return { index, n, t, s: bs };
  return fail('senml_value', index, 'record has no value');
}

function finite(value: number, index: number): number {
  if (!Number.isFinite(value)) fail('senml_value', index, 'resolved value is not a finite number');
  return value;
}

/** PROTOCOL.md §5: one value of one metric of one device at one time. */
export interface Reading {
  deviceId: DeviceId;
  metric: MetricName;
  /** Epoch seconds; fractions allowed. */
  time: number;
  value: number | boolean | string;
  unit?: string;
  /** `bf: true`: sent late from the outbox. */
  backfilled: boolean;
  clock: ClockQuality | undefined;
}

/**
 * Maps resolved records of a batch published by `publisherId` to readings (PROTOCOL.md §5):
 * a name `<metric>` is about the publisher, `<deviceId>/<metric>` about that device (whether
 * it is a child of the publisher is the caller's check, see `mayActFor` in `./acl`).
 * `<publisherId>/<metric>` is accepted and means the publisher. Values must be `v`, `vb`
 * or `vs`.
 */
export function toReadings(resolved: readonly ResolvedRecord[], publisherId: DeviceId): Reading[] {
  if (!isDeviceId(publisherId)) {
    throw new ProtocolError('bad_device_id', 'publisher is not a device id', {
      details: { deviceId: publisherId },
    });
  }
  const readings: Reading[] = [];
  for (const record of resolved) {
    const { index } = record;
    const slash = record.n.indexOf('/');
    const deviceId = slash === -1 ? publisherId : record.n.slice(0, slash);
    const metric = slash === -1 ? record.n : record.n.slice(slash + 1);
    if (!isDeviceId(deviceId)) {
      fail('senml_name', index, 'name must be <metric> or <deviceId>/<metric>: bad device id');
    }
    if (!isMetricName(metric)) {
      fail('senml_name', index, 'name must be <metric> or <deviceId>/<metric>: bad metric name');
    }
    let value: number | boolean | string;
    if ('v' in record) value = record.v;
    else if ('vb' in record) value = record.vb;
    else if ('vs' in record) value = record.vs;
    else return fail('senml_value', index, 'PROTOCOL.md §5 values are v, vb or vs');
    const reading: Reading = {
      deviceId,
      metric,
      time: record.t,
      value,
      backfilled: record.bf === true,
      clock: record.cq,
    };
    if (record.u !== undefined) reading.unit = record.u;
    readings.push(reading);
  }
  return readings;
}

/**
 * Builds the pack that `toReadings(resolveSenml(pack))` turns back into `readings`, in
 * order. Compresses with a base name per device (`<deviceId>/`, `""` for the publisher)
 * and a base time from which later times are offsets. Offsets are used only when they
 * add back to the exact same double; otherwise the record starts a new base time.
 * Throws a ProtocolError for readings the protocol cannot carry.
 */
export function compressPack(readings: readonly Reading[], publisherId: DeviceId): SenmlPack {
  if (!isDeviceId(publisherId)) {
    throw new ProtocolError('bad_device_id', 'publisher is not a device id', {
      details: { deviceId: publisherId },
    });
  }
  if (readings.length === 0 || readings.length > MAX_RECORDS_PER_BATCH) {
    throw new ProtocolError(
      readings.length === 0 ? 'senml_invalid' : 'too_many_records',
      `a pack carries 1 to ${MAX_RECORDS_PER_BATCH} records`,
      { details: { limit: MAX_RECORDS_PER_BATCH, count: readings.length } },
    );
  }
  const pack: SenmlPack = [];
  let bn = '';
  let bt: number | undefined;
  for (let index = 0; index < readings.length; index++) {
    const reading = readings[index]!;
    const prefix = reading.deviceId === publisherId ? '' : `${reading.deviceId}/`;
    checkReading(reading, index, prefix);
    const record: SenmlRecord = {};
    if (prefix !== bn) {
      record.bn = prefix;
      bn = prefix;
    }
    const offset = bt === undefined ? Number.NaN : reading.time - bt;
    if (bt !== undefined && bt + offset === reading.time) {
      if (offset !== 0) record.t = offset;
    } else {
      record.bt = reading.time;
      bt = reading.time;
    }
    record.n = reading.metric;
    if (reading.unit !== undefined) record.u = reading.unit;
    if (typeof reading.value === 'number') record.v = reading.value;
    else if (typeof reading.value === 'boolean') record.vb = reading.value;
    else record.vs = reading.value;
    if (reading.backfilled) record.bf = true;
    if (reading.clock !== undefined) record.cq = reading.clock;
    pack.push(record);
  }
  return pack;
}

function checkReading(reading: Reading, index: number, prefix: string): void {
  if (!isDeviceId(reading.deviceId)) fail('senml_name', index, 'bad device id');
  if (!isMetricName(reading.metric) || !RESOLVED_NAME.test(prefix + reading.metric)) {
    // RFC 8428 §4.5.1: a publisher's own metric cannot start with `_`, `.` or `-`.
    fail('senml_name', index, 'metric name cannot be carried in a SenML name');
  }
  if (!Number.isFinite(reading.time) || reading.time < SENML_RELATIVE_TIME_LIMIT) {
    fail('senml_time', index, 'time must be absolute epoch seconds (at least 2**28)');
  }
  const { value } = reading;
  const valueOk =
    typeof value === 'number'
      ? Number.isFinite(value)
      : typeof value === 'boolean' || stringValue.safeParse(value).success;
  if (!valueOk) fail('senml_value', index, 'value cannot be carried in SenML');
  if (reading.unit !== undefined && !unit.safeParse(reading.unit).success) {
    fail('senml_value', index, 'unit cannot be carried in SenML');
  }
}
