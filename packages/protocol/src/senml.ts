import { z } from 'zod';
import { ProtocolError, payloadIssues } from './errors.js';
import { type DeviceId, isDeviceId, isMetricName, type MetricName } from './ids.js';
import {
  MAX_RECORDS_PER_BATCH,
  MAX_SENML_NAME_LENGTH,
  MAX_SENML_UNIT_LENGTH,
  MAX_STRING_VALUE_LENGTH,
} from './limits.js';
import { isWellFormedText, textSchema } from './text.js';

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
/** RFC 8428 §5: `vd` is base64url without padding in JSON. */
const BASE64URL = /^[A-Za-z0-9_-]*$/;

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
    .regex(BASE64URL, 'must be base64url without padding')
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
  const pack = tryParseSenmlPack(input);
  if (pack !== undefined) return pack;
  // Refused: the schema says why, with the codes, messages and paths callers rely on.
  const result = senmlPackSchema.safeParse(input);
  if (!result.success) throw senmlParseError(result.error);
  return result.data;
}

/**
 * `senmlPackSchema` without zod, for the ingest's hot path (zod costs about 0.8 µs a
 * record): the same parsed pack for every input the schema accepts, undefined for every
 * input it refuses (the property test in senml.spec.ts holds the two together). Callers
 * go back to the schema only to describe a refusal.
 */
export function tryParseSenmlPack(input: unknown): SenmlPack | undefined {
  if (!Array.isArray(input) || input.length < 1 || input.length > MAX_RECORDS_PER_BATCH) {
    return undefined;
  }
  const pack: SenmlRecord[] = [];
  for (let i = 0; i < input.length; i++) {
    const record = tryParseSenmlRecord(input[i]);
    if (record === undefined) return undefined;
    pack.push(record);
  }
  return pack;
}

/** The fields of `senmlRecordSchema`: anything else is refused (strict). */
const RECORD_FIELDS: ReadonlySet<string> = new Set(Object.keys(senmlRecordSchema.shape));

/**
 * `senmlRecordSchema` without zod: the parsed record, or undefined where the schema refuses.
 * Follows zod's object rules exactly: every field is read as `input[key]`, a field is
 * present when `key in input` (a present `undefined` is kept as such), unknown keys are
 * those `for…in` yields, and the output lists the fields in the schema's order.
 */
export function tryParseSenmlRecord(input: unknown): SenmlRecord | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
  for (const key in input) if (!RECORD_FIELDS.has(key)) return undefined;
  const r = input as Record<string, unknown>;
  const { bn, bt, bu, bv, bs, bver, n, u, v, vs, vb, vd, s, t, ut, bf, cq } = r;
  if (
    !(
      optionalText(bn, 0, MAX_SENML_NAME_LENGTH) &&
      optionalNumber(bt) &&
      optionalText(bu, 1, MAX_SENML_UNIT_LENGTH) &&
      optionalNumber(bv) &&
      optionalNumber(bs) &&
      // z.number().int() means a safe integer.
      (bver === undefined || (Number.isSafeInteger(bver) && (bver as number) > 0)) &&
      optionalText(n, 0, MAX_SENML_NAME_LENGTH) &&
      optionalText(u, 1, MAX_SENML_UNIT_LENGTH) &&
      optionalNumber(v) &&
      optionalText(vs, 0, MAX_STRING_VALUE_LENGTH) &&
      optionalBoolean(vb) &&
      (vd === undefined ||
        (typeof vd === 'string' && vd.length <= MAX_STRING_VALUE_LENGTH && BASE64URL.test(vd))) &&
      optionalNumber(s) &&
      optionalNumber(t) &&
      optionalNumber(ut) &&
      (ut === undefined || ut >= 0) &&
      optionalBoolean(bf) &&
      (cq === undefined || cq === 'synced' || cq === 'unsynced')
    )
  ) {
    return undefined;
  }
  const out: SenmlRecord = {};
  if (bn !== undefined || 'bn' in r) out.bn = bn;
  if (bt !== undefined || 'bt' in r) out.bt = bt;
  if (bu !== undefined || 'bu' in r) out.bu = bu;
  if (bv !== undefined || 'bv' in r) out.bv = bv;
  if (bs !== undefined || 'bs' in r) out.bs = bs;
  if (bver !== undefined || 'bver' in r) out.bver = bver as number | undefined;
  if (n !== undefined || 'n' in r) out.n = n;
  if (u !== undefined || 'u' in r) out.u = u;
  if (v !== undefined || 'v' in r) out.v = v;
  if (vs !== undefined || 'vs' in r) out.vs = vs;
  if (vb !== undefined || 'vb' in r) out.vb = vb;
  if (vd !== undefined || 'vd' in r) out.vd = vd;
  if (s !== undefined || 's' in r) out.s = s;
  if (t !== undefined || 't' in r) out.t = t;
  if (ut !== undefined || 'ut' in r) out.ut = ut;
  if (bf !== undefined || 'bf' in r) out.bf = bf;
  if (cq !== undefined || 'cq' in r) out.cq = cq;
  return out;
}

/** `z.number().optional()`: z.number() refuses NaN and ±Infinity. */
function optionalNumber(x: unknown): x is number | undefined {
  return x === undefined || (typeof x === 'number' && Number.isFinite(x));
}

function optionalBoolean(x: unknown): x is boolean | undefined {
  return x === undefined || typeof x === 'boolean';
}

/** `textSchema(max, min).optional()`. */
function optionalText(x: unknown, min: number, max: number): x is string | undefined {
  return (
    x === undefined ||
    (typeof x === 'string' && x.length >= min && x.length <= max && isWellFormedText(x))
  );
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
 * `toReadings(resolveSenml(pack, options), publisherId)` in one pass, without the resolved
 * records in between: the same readings, or the same ProtocolError. Records named the usual
 * ways (`<metric>` or `<deviceId>/<metric>`, from `bn` + `n` or from `n` alone) carrying
 * `v`, `vb` or `vs` take the short way; any other record, and any failure, sends the whole
 * pack the long way, which decides the outcome and the error.
 */
export function resolveReadings(
  pack: readonly SenmlRecord[],
  options: ResolveOptions,
  publisherId: DeviceId,
): Reading[] {
  return (
    readingsShortWay(pack, options.now, publisherId) ??
    toReadings(resolveSenml(pack, options), publisherId)
  );
}

/** Base names of the form `<deviceId>/` name that device; `''` names no one. */
const DEVICE_PREFIX = /^[a-z0-9][a-z0-9._-]{0,63}\/$/;

function readingsShortWay(
  pack: readonly SenmlRecord[],
  now: number,
  publisherId: DeviceId,
): Reading[] | undefined {
  if (pack.length > MAX_RECORDS_PER_BATCH || !isDeviceId(publisherId)) return undefined;
  let bn = '';
  /** The device `bn` names, or undefined for `bn` = `''`. */
  let bnDevice: string | undefined;
  let bt = 0;
  let bu: string | undefined;
  let bv: number | undefined;
  let bver: number | undefined;
  const readings: Reading[] = [];
  for (let index = 0; index < pack.length; index++) {
    const record = pack[index]!;
    if (record.bver !== undefined) {
      if (record.bver > SENML_VERSION || (bver !== undefined && record.bver !== bver)) {
        return undefined;
      }
      bver = record.bver;
    }
    if (record.bn !== undefined && record.bn !== bn) {
      bn = record.bn;
      if (bn === '') bnDevice = undefined;
      else if (DEVICE_PREFIX.test(bn)) bnDevice = bn.slice(0, -1);
      else return undefined;
    }
    if (record.bt !== undefined) bt = record.bt;
    if (record.bu !== undefined) bu = record.bu;
    if (record.bv !== undefined) bv = record.bv;
    if (setsOnlyBaseFields(record)) continue;

    // RFC 8428 §4.5.1 and PROTOCOL.md §5: a valid device id, `/` and a valid metric name
    // always form a valid resolved name, so the two checks below are all it takes.
    const n = record.n ?? '';
    let deviceId: string;
    let metric: string;
    if (bnDevice !== undefined) {
      deviceId = bnDevice;
      metric = n;
    } else {
      const slash = n.indexOf('/');
      deviceId = slash === -1 ? publisherId : n.slice(0, slash);
      metric = slash === -1 ? n : n.slice(slash + 1);
      if (slash !== -1 && !isDeviceId(deviceId)) return undefined;
    }
    if (!isMetricName(metric)) return undefined;

    const sum = bt + (record.t ?? 0);
    const time = sum < SENML_RELATIVE_TIME_LIMIT ? now + sum : sum;
    if (!Number.isFinite(time)) return undefined;

    const { v, vs, vb } = record;
    if (record.vd !== undefined || record.s !== undefined) return undefined;
    let value: number | boolean | string;
    if (v !== undefined) {
      if (vs !== undefined || vb !== undefined) return undefined;
      value = bv === undefined ? v : bv + v;
      if (!Number.isFinite(value)) return undefined;
    } else if (vs !== undefined) {
      if (vb !== undefined) return undefined;
      value = vs;
    } else if (vb !== undefined) {
      value = vb;
    } else if (bv !== undefined) {
      value = bv;
    } else {
      // `bs` alone resolves to `s`, which no reading carries; nothing at all is no value.
      return undefined;
    }
    const reading: Reading = {
      deviceId,
      metric,
      time,
      value,
      backfilled: record.bf === true,
      clock: record.cq,
    };
    const u = record.u ?? bu;
    if (u !== undefined) reading.unit = u;
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
