import { DEVICE_ID_PATTERN, metricNameSchema } from '@outpost/protocol/ids';
import { MAX_STRING_VALUE_LENGTH, MAX_TOPIC_LENGTH } from '@outpost/protocol/limits';
import { parseSenmlPack, resolveSenml, toReadings } from '@outpost/protocol/senml';
import { z } from 'zod';
import {
  type JsonMapping,
  jsonPath,
  jsonValues,
  readNumber,
  readTime,
  TIME_FORMATS,
  unitSchema,
} from './line-parsers.js';
import type { SourceReading, SourceValue } from './source.js';

/**
 * Maps MQTT messages of local sensors to readings (pure). A mapping names a topic filter,
 * the device and metric (templates: `{1}` is the first wildcard's match), and how to read
 * the payload: a bare `number`, a `json` object, or a `senml` pack (RFC 8428). The first
 * mapping whose filter matches a topic wins.
 */

export const PAYLOAD_KINDS = ['number', 'json', 'senml'] as const;

const TEMPLATE_REF = /\{(\d+)\}/g;

function isTopicFilter(filter: string): boolean {
  const levels = filter.split('/');
  // [MQTT-4.7.1-2] `#` is a whole level and the last; [MQTT-4.7.1-3] `+` is a whole level.
  return levels.every(
    (level, i) =>
      (level === '#' && i === levels.length - 1) ||
      level === '+' ||
      (!level.includes('#') && !level.includes('+')),
  );
}

function wildcards(filter: string): number {
  return filter.split('/').filter((level) => level === '+' || level === '#').length;
}

const templateSchema = z.string().min(1).max(128);

export const topicMappingSchema = z
  .strictObject({
    filter: z
      .string()
      .min(1)
      .max(MAX_TOPIC_LENGTH)
      .refine(isTopicFilter, 'not an MQTT topic filter'),
    /** Device id, or a template such as `{1}` or `room-{2}`. */
    device: templateSchema,
    /** Metric name or template; required for `number`, and for `json` with `path`. */
    metric: templateSchema.optional(),
    payload: z.enum(PAYLOAD_KINDS).default('number'),
    /** `json`: a dotted path to the one value of `metric`. */
    path: z.string().min(1).max(128).optional(),
    /** `json`: dotted path → metric, for several values in one object. */
    map: z.record(z.string().min(1).max(128), metricNameSchema).optional(),
    /** `json`: a dotted path to the reading's own timestamp. */
    time: z
      .strictObject({
        field: z.string().min(1).max(128),
        format: z.enum(TIME_FORMATS).default('s'),
      })
      .optional(),
    /** Unit of `metric`; `units` gives units per metric for `json` payloads. */
    unit: unitSchema.optional(),
    units: z.record(metricNameSchema, unitSchema).default({}),
    metrics: z.array(metricNameSchema).min(1).max(256).optional(),
    strings: z.boolean().default(false),
  })
  .superRefine((m, ctx) => {
    const count = wildcards(m.filter);
    for (const key of ['device', 'metric'] as const) {
      for (const ref of (m[key] ?? '').matchAll(TEMPLATE_REF)) {
        const n = Number(ref[1]);
        if (n < 1 || n > count) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `{${n}} names no wildcard of the filter (it has ${count})`,
          });
        }
      }
    }
    const need = (ok: boolean, path: string, message: string) => {
      if (!ok) ctx.addIssue({ code: 'custom', path: [path], message });
    };
    if (m.payload === 'number') {
      need(m.metric !== undefined, 'metric', 'a number payload needs a metric');
      need(m.path === undefined && m.map === undefined, 'payload', 'path and map are for json');
    }
    if (m.payload === 'json') {
      need(m.path === undefined || m.metric !== undefined, 'metric', 'path needs a metric');
      need(m.path === undefined || m.map === undefined, 'map', 'give path or map, not both');
      need(m.map === undefined || m.metric === undefined, 'metric', 'metric goes with path');
    }
    if (m.payload === 'senml') {
      need(
        m.metric === undefined && m.path === undefined && m.map === undefined,
        'payload',
        'senml records name their metrics',
      );
    }
  });
export type TopicMapping = z.output<typeof topicMappingSchema>;

/** Used when a local broker's config names no topics: `sensors/<device>/<metric>`. */
export const DEFAULT_TOPIC_MAPPINGS: z.input<typeof topicMappingSchema>[] = [
  { filter: 'sensors/+/senml', device: '{1}', payload: 'senml' },
  { filter: 'sensors/+/+', device: '{1}', metric: '{2}', payload: 'number' },
];

/**
 * The wildcard matches of `topic` under `filter` (one per `+` or `#`), or undefined.
 * [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with `$`.
 */
export function matchTopic(filter: readonly string[], topic: string): string[] | undefined {
  const levels = topic.split('/');
  const captures: string[] = [];
  if (topic.startsWith('$') && (filter[0] === '+' || filter[0] === '#')) return undefined;
  for (let i = 0; i < filter.length; i++) {
    const want = filter[i]!;
    if (want === '#') {
      // [MQTT-4.7.1-2] `sport/#` also matches the parent `sport`.
      captures.push(levels.slice(i).join('/'));
      return captures;
    }
    const level = levels[i];
    if (level === undefined) return undefined;
    if (want === '+') captures.push(level);
    else if (want !== level) return undefined;
  }
  return levels.length === filter.length ? captures : undefined;
}

function fill(template: string, captures: readonly string[]): string {
  return template.replace(TEMPLATE_REF, (_, n: string) => captures[Number(n) - 1] ?? '');
}

export type MappingResult =
  | { kind: 'readings'; readings: SourceReading[] }
  | { kind: 'bad'; reason: string }
  | { kind: 'unmatched' };

interface CompiledMapping {
  config: TopicMapping;
  filter: string[];
  json: JsonMapping;
  units: ReadonlyMap<string, string>;
}

const bad = (reason: string): MappingResult => ({ kind: 'bad', reason });
const utf8 = new TextDecoder('utf-8', { fatal: true });

export class TopicMapper {
  readonly #mappings: CompiledMapping[];

  constructor(mappings: readonly TopicMapping[]) {
    this.#mappings = mappings.map((config) => ({
      config,
      filter: config.filter.split('/'),
      json: {
        map: config.map === undefined ? undefined : new Map(Object.entries(config.map)),
        time: config.time,
        strings: config.strings,
        allow: config.metrics === undefined ? undefined : new Set(config.metrics),
      },
      units: new Map(Object.entries(config.units)),
    }));
  }

  /** The readings of one message; `nowS` (epoch seconds) stamps those without a time. */
  map(topic: string, payload: Uint8Array, nowS: number): MappingResult {
    for (const mapping of this.#mappings) {
      const captures = matchTopic(mapping.filter, topic);
      if (captures !== undefined) return this.#read(mapping, captures, payload, nowS);
    }
    return { kind: 'unmatched' };
  }

  #read(
    mapping: CompiledMapping,
    captures: string[],
    payload: Uint8Array,
    nowS: number,
  ): MappingResult {
    const { config } = mapping;
    const device = fill(config.device, captures);
    if (!DEVICE_ID_PATTERN.test(device)) return bad('device');
    let text: string;
    try {
      text = utf8.decode(payload);
    } catch {
      return bad('charset');
    }
    const metric = config.metric === undefined ? undefined : fill(config.metric, captures);
    if (metric !== undefined && !metricNameSchema.safeParse(metric).success) return bad('metric');
    const unitOf = (m: string) => (m === metric ? config.unit : undefined) ?? mapping.units.get(m);

    if (config.payload === 'number') {
      const value = readPayloadText(text.trim(), config.strings);
      if (value === undefined) return bad('value');
      return {
        kind: 'readings',
        readings: [reading(device, metric!, nowS, value, unitOf(metric!))],
      };
    }

    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return bad('json');
    }

    if (config.payload === 'senml') {
      try {
        const resolved = resolveSenml(parseSenmlPack(json), { now: nowS });
        const readings = toReadings(resolved, device).map((r) =>
          reading(r.deviceId, r.metric, r.time, r.value, r.unit),
        );
        return readings.length === 0 ? bad('no_values') : { kind: 'readings', readings };
      } catch {
        return bad('senml');
      }
    }

    if (config.path !== undefined) {
      const raw = jsonPath(json, config.path);
      const value =
        typeof raw === 'string' ? readPayloadText(raw.trim(), config.strings) : jsonScalar(raw);
      if (value === undefined) return bad('value');
      const time = timeOf(json, mapping.json);
      if (time === null) return bad('time');
      return {
        kind: 'readings',
        readings: [reading(device, metric!, time ?? nowS, value, unitOf(metric!))],
      };
    }
    // A bare JSON scalar under a metric: `21.5` or `true` published as JSON.
    if (metric !== undefined && (typeof json !== 'object' || json === null)) {
      const value = jsonScalar(json);
      if (value === undefined) return bad('value');
      return { kind: 'readings', readings: [reading(device, metric, nowS, value, unitOf(metric))] };
    }
    const parsed = jsonValues(json, mapping.json);
    if (!parsed.ok) return bad(parsed.reason);
    if (parsed.values.length === 0) return bad('no_values');
    const time = parsed.time ?? nowS;
    return {
      kind: 'readings',
      readings: parsed.values.map(([m, v]) => reading(device, m, time, v, unitOf(m))),
    };
  }
}

function reading(
  device: string,
  metric: string,
  time: number,
  value: SourceValue,
  unit: string | undefined,
): SourceReading {
  return unit === undefined
    ? { device, metric, time, value }
    : { device, metric, time, value, unit };
}

function readPayloadText(text: string, strings: boolean): SourceValue | undefined {
  const number = readNumber(text);
  if (number !== undefined) return number;
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (strings && text.length > 0 && text.length <= MAX_STRING_VALUE_LENGTH) return text;
  return undefined;
}

function jsonScalar(value: unknown): SourceValue | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'boolean') return value;
  return undefined;
}

/** The message's own time: undefined when absent, null when present but unreadable. */
function timeOf(json: unknown, mapping: JsonMapping): number | undefined | null {
  if (mapping.time === undefined) return undefined;
  const raw = jsonPath(json, mapping.time.field);
  if (raw === undefined || raw === null) return undefined;
  return readTime(raw, mapping.time.format) ?? null;
}
