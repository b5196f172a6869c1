import type { TelemetryPoint } from './telemetry-store.js';

/**
 * TelemetryPoint → InfluxDB line protocol, built by hand (about 3× faster than the client's
 * `Point`). Pure. The schema, also in SCHEMA.md:
 *
 *   measurement  the metric name
 *   tags         device          the device the reading is about
 *                t_<key>         the device's registry tags (at most 32, the registry's limit;
 *                                the prefix keeps them clear of `device` and `unit`)
 *                unit            the SenML unit, when the reading has one
 *   fields       value  float    numbers (integers are written as floats)
 *                text   string   strings
 *                flag   boolean  booleans
 *                backfilled=true, unsynced=true   only when set (PROTOCOL.md §5 `bf`, `cq`)
 *   timestamp    epoch milliseconds (write with precision=ms)
 *
 * Each value type has its own field, so a metric that is sometimes a number and sometimes a
 * string never makes InfluxDB refuse a batch for a field type conflict. Cardinality: one
 * series per (metric, device, registry tags, unit), all bounded by the registry.
 *
 * Names and tag values: InfluxDB 1.x/2.x (Go) and VictoriaMetrics / InfluxDB 3 parse a
 * backslash differently when it precedes another backslash, a space, a comma, `=` or the
 * end of the text (1.x cannot express a trailing backslash at all and refuses the line).
 * Such a backslash is stored as U+FF3C `＼`, control characters (Unicode Cc) as U+FFFD,
 * and an empty tag value is left out. Every other character is stored and read back exactly.
 */

/** At most this many registry tags become `t_*` tags (the registry allows 32). */
export const MAX_POINT_TAGS = 32;

const CONTROL = /\p{Cc}/gu;
const AMBIGUOUS_BACKSLASH = /\\(?=[\\,= ]|$)/g;

/**
 * True when `text` holds a backslash, comma, `=`, space or control character (Unicode Cc:
 * U+0000–U+001F, U+007F–U+009F). A loop over the code units: no surrogate is any of these,
 * and it costs a fraction of a Unicode pattern on the short names of every point.
 */
function needsCare(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c === 0x2c || c === 0x3d || c === 0x5c || (c >= 0x7f && c <= 0x9f)) {
      return true;
    }
  }
  return false;
}

/**
 * The text the server stores for a measurement name, tag key or tag value: what a query
 * must ask for. Identity for every protocol-valid device id and metric name.
 */
export function storedName(text: string): string {
  if (!needsCare(text)) return text;
  return text.replace(CONTROL, '\uFFFD').replace(AMBIGUOUS_BACKSLASH, '\uFF3C');
}

/** A measurement: commas and spaces escaped. */
export function escapeMeasurement(name: string): string {
  if (!needsCare(name)) return name;
  return storedName(name).replace(/[, ]/g, '\\$&');
}

/** A tag key or tag value: commas, `=` and spaces escaped. */
export function escapeTag(text: string): string {
  if (!needsCare(text)) return text;
  return storedName(text).replace(/[,= ]/g, '\\$&');
}

/** A string field value, quoted: backslashes and double quotes escaped; all else literal. */
export function quoteString(text: string): string {
  return `"${text.replace(/[\\"]/g, '\\$&')}"`;
}

/** `,t_a=x,t_b=y` for a registry tag set, keys sorted, at most {@link MAX_POINT_TAGS}. */
export function registryTagSet(tags: Readonly<Record<string, string>>): string {
  const keys = Object.keys(tags).sort();
  let out = '';
  let n = 0;
  for (const key of keys) {
    if (n === MAX_POINT_TAGS) break;
    const value = tags[key];
    if (value === undefined || value === '' || key === '') continue;
    out += `,t_${escapeTag(key)}=${escapeTag(value)}`;
    n++;
  }
  return out;
}

// Points of one device share their tags object: build each tag set once.
const tagSetCache = new WeakMap<object, string>();

function cachedTagSet(tags: Readonly<Record<string, string>>): string {
  let set = tagSetCache.get(tags);
  if (set === undefined) {
    set = registryTagSet(tags);
    tagSetCache.set(tags, set);
  }
  return set;
}

/** Why a point cannot be written; the store refuses the batch (nothing is sent). */
export class UnwritablePoint extends RangeError {}

function valueField(value: TelemetryPoint['value']): string {
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw new UnwritablePoint(`not a finite number: ${value}`);
      // A bare number is a float in line protocol; integers would need an `i` suffix.
      return `value=${value}`;
    case 'string':
      return `text=${quoteString(value)}`;
    case 'boolean':
      return value ? 'flag=true' : 'flag=false';
    default:
      throw new UnwritablePoint(`not a number, string or boolean: ${typeof value}`);
  }
}

/** `,device=…,t_…=…`: the tags every point of a device shares. */
function deviceTags(point: TelemetryPoint): string {
  return `,device=${escapeTag(point.device)}${cachedTagSet(point.tags)}`;
}

function lineOf(point: TelemetryPoint, tags: string): string {
  if (!Number.isSafeInteger(point.timeMs)) {
    throw new UnwritablePoint(`time is not an integer of milliseconds: ${point.timeMs}`);
  }
  let line = escapeMeasurement(point.metric) + tags;
  if (point.unit !== undefined && point.unit !== '') line += `,unit=${escapeTag(point.unit)}`;
  line += ` ${valueField(point.value)}`;
  if (point.backfilled === true) line += ',backfilled=true';
  if (point.unsynced === true) line += ',unsynced=true';
  return `${line} ${point.timeMs}`;
}

/** One line, without a trailing newline. Throws {@link UnwritablePoint}. */
export function toLine(point: TelemetryPoint): string {
  return lineOf(point, deviceTags(point));
}

/** A write body: one line per point, `\n`-separated. Throws {@link UnwritablePoint}. */
export function toLines(points: readonly TelemetryPoint[]): string {
  const lines = new Array<string>(points.length);
  // Points of one device come in runs (a batch lists a device's readings together).
  let device: string | undefined;
  let registryTags: TelemetryPoint['tags'] | undefined;
  let tags = '';
  for (let i = 0; i < points.length; i++) {
    const point = points[i]!;
    if (point.device !== device || point.tags !== registryTags) {
      device = point.device;
      registryTags = point.tags;
      tags = deviceTags(point);
    }
    lines[i] = lineOf(point, tags);
  }
  return lines.join('\n');
}
