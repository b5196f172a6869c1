import { METRIC_NAME_PATTERN, metricNameSchema } from '@outpost/protocol/ids';
import { MAX_SENML_UNIT_LENGTH, MAX_STRING_VALUE_LENGTH } from '@outpost/protocol/limits';
import { SENML_RELATIVE_TIME_LIMIT } from '@outpost/protocol/senml';
import { MAX_SERIAL_LINE_LENGTH, parseLine, type SerialLine } from '@outpost/protocol/serial-line';
import { textSchema } from '@outpost/protocol/text';
import { z } from 'zod';
import type { SourceValue } from './source.js';

/**
 * Declarative line parsers (PROTOCOL.md §10: "real sensors with other line formats need
 * configuration, not code"). Pure: a parser turns one line (without its `\n`) into metric
 * values, or says why it refused it. Parsers never throw on input and bound what they read.
 */

export type ParsedValue = readonly [metric: string, value: SourceValue];

export type ParseResult =
  | {
      ok: true;
      /** May be empty: a header line, an `ID` line, or a line whose metrics are all filtered. */
      values: readonly ParsedValue[];
      /** Epoch seconds, when the line carried its own timestamp. */
      time?: number;
      /** `outpost-line` only: a line other than a reading (`ID`, `LOG`, `OK`, `ERR`...). */
      frame?: SerialLine;
    }
  | { ok: false; reason: string };

export interface LineParser {
  readonly type: ParserType;
  /** Longest line accepted, not counting the `\n`; longer lines fail with `too_long`. */
  readonly maxLineLength: number;
  parse(line: string): ParseResult;
  /** The configured SenML unit of a metric. */
  unit(metric: string): string | undefined;
  /** Forgets what was learned from the stream (a CSV header), e.g. after a reopen. */
  reset(): void;
}

// ---------------------------------------------------------------------------------------
// Configuration

export const PARSER_TYPES = ['outpost-line', 'kv', 'csv', 'jsonl', 'regex'] as const;
export type ParserType = (typeof PARSER_TYPES)[number];

/** Largest configurable line; the default is the PROTOCOL.md §10 limit. */
export const MAX_CONFIGURABLE_LINE_LENGTH = 65_536;

export const TIME_FORMATS = ['s', 'ms', 'iso'] as const;
export type TimeFormat = (typeof TIME_FORMATS)[number];

export const unitSchema = textSchema(MAX_SENML_UNIT_LENGTH, 1);
const keySchema = z.string().min(1).max(128);
const timeFormatSchema = z.enum(TIME_FORMATS).default('s');

const commonFields = {
  /** metric → SenML unit (RFC 8428 §12.1), attached to each reading of that metric. */
  units: z.record(metricNameSchema, unitSchema).default({}),
  /** Allow-list: values of other metrics are ignored, not counted as bad. */
  metrics: z.array(metricNameSchema).min(1).max(256).optional(),
};
const genericFields = {
  ...commonFields,
  maxLineLength: z
    .number()
    .int()
    .min(16)
    .max(MAX_CONFIGURABLE_LINE_LENGTH)
    .default(MAX_SERIAL_LINE_LENGTH),
  /** Accept non-numeric, non-boolean values as SenML strings (`vs`). */
  strings: z.boolean().default(false),
  /** source key (kv key, CSV column, JSON path, regex group) → metric; only mapped keys are read. */
  map: z.record(keySchema, metricNameSchema).optional(),
};

export const outpostLineParserSchema = z.strictObject({
  type: z.literal('outpost-line'),
  ...commonFields,
});

export const kvParserSchema = z
  .strictObject({
    type: z.literal('kv'),
    /** Between pairs; `' '` means any run of spaces and tabs. */
    pairSeparator: z.string().min(1).max(4).default(' '),
    /** Between a key and its value. */
    kvSeparator: z.string().min(1).max(4).default('='),
    /** A key holding the reading's timestamp. */
    time: z.strictObject({ key: keySchema, format: timeFormatSchema }).optional(),
    ...genericFields,
  })
  .refine((c) => c.pairSeparator !== c.kvSeparator, {
    message: 'pairSeparator and kvSeparator must differ',
    path: ['kvSeparator'],
  });

export const csvParserSchema = z
  .strictObject({
    type: z.literal('csv'),
    delimiter: z.string().length(1).default(','),
    /**
     * Column names in order, or `line`: a line with no numeric cell is the header, learned
     * from the stream (devices print it at boot) and forgotten at each reopen.
     */
    header: z.union([z.literal('line'), z.array(keySchema).min(1).max(256)]),
    time: z.strictObject({ column: keySchema, format: timeFormatSchema }).optional(),
    ...genericFields,
  })
  .superRefine((c, ctx) => {
    if (!Array.isArray(c.header)) return;
    const header = c.header;
    if (new Set(header).size !== header.length) {
      ctx.addIssue({ code: 'custom', path: ['header'], message: 'column names must be unique' });
    }
    if (c.time !== undefined && !header.includes(c.time.column)) {
      ctx.addIssue({ code: 'custom', path: ['time', 'column'], message: 'not a header column' });
    }
    for (const column of Object.keys(c.map ?? {})) {
      if (!header.includes(column)) {
        ctx.addIssue({ code: 'custom', path: ['map', column], message: 'not a header column' });
      }
    }
    if (c.map === undefined) {
      for (const column of header) {
        if (column !== c.time?.column && !METRIC_NAME_PATTERN.test(column)) {
          ctx.addIssue({
            code: 'custom',
            path: ['header'],
            message: `column "${column}" is not a metric name: map it with map:`,
          });
        }
      }
    }
  });

export const jsonlParserSchema = z.strictObject({
  type: z.literal('jsonl'),
  /** A dotted path (`env.temp`) to the reading's timestamp. */
  time: z.strictObject({ field: keySchema, format: timeFormatSchema }).optional(),
  ...genericFields,
});

export const regexParserSchema = z
  .strictObject({
    type: z.literal('regex'),
    /** Named groups are metrics (or `map` keys); a group named `time` is the timestamp. */
    pattern: z.string().min(1).max(1024),
    flags: z
      .string()
      .regex(/^[imsu]*$/, 'flags may be i, m, s, u')
      .default(''),
    time: z.strictObject({ format: timeFormatSchema }).optional(),
    ...genericFields,
  })
  .superRefine((c, ctx) => {
    let re: RegExp;
    try {
      re = new RegExp(c.pattern, c.flags);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['pattern'], message: (err as Error).message });
      return;
    }
    const groups = namedGroups(re).filter((g) => g !== 'time');
    if (groups.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['pattern'],
        message: 'needs at least one named group (?<metric>...)',
      });
    }
    if (c.time !== undefined && !namedGroups(re).includes('time')) {
      ctx.addIssue({
        code: 'custom',
        path: ['pattern'],
        message: 'time: needs a group (?<time>...)',
      });
    }
  });

const parserObjectSchema = z.discriminatedUnion('type', [
  outpostLineParserSchema,
  kvParserSchema,
  csvParserSchema,
  jsonlParserSchema,
  regexParserSchema,
]);

/** `parser:` of a serial source: a type name (when it needs no options) or an object. */
export const parserConfigSchema = z.preprocess(
  (value) => (typeof value === 'string' ? { type: value } : value),
  parserObjectSchema,
);
export type ParserConfig = z.output<typeof parserObjectSchema>;
export type ParserConfigInput = z.input<typeof parserObjectSchema> | ParserType;

// ---------------------------------------------------------------------------------------
// Values and times

const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const ISO_TIME =
  /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/;
/** Latest accepted timestamp: the year 2500; later ones are a misread field, not a time. */
const MAX_EPOCH_S = 16_725_225_600;

/** Reads a numeric text; undefined when it is not a finite number. */
export function readNumber(text: string): number | undefined {
  if (!NUMERIC.test(text)) return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * A value as text: a number, `true`/`false`, or (if allowed) a string. Returns undefined
 * for an empty field (nothing to read) and null for a value that cannot be read.
 */
function readText(raw: string, strings: boolean): SourceValue | undefined | null {
  const text = raw.trim();
  if (text.length === 0) return undefined;
  const number = readNumber(text);
  if (number !== undefined) return number;
  if (NUMERIC.test(text)) return null; // overflows to Infinity
  if (text === 'true') return true;
  if (text === 'false') return false;
  return strings && text.length <= MAX_STRING_VALUE_LENGTH ? text : null;
}

/** Epoch seconds from a number or text in `format`, or undefined when implausible. */
export function readTime(raw: unknown, format: TimeFormat): number | undefined {
  let seconds: number | undefined;
  if (format === 'iso') {
    if (typeof raw !== 'string' || !ISO_TIME.test(raw.trim())) return undefined;
    const ms = Date.parse(raw.trim());
    seconds = Number.isNaN(ms) ? undefined : ms / 1000;
  } else {
    const n =
      typeof raw === 'number' ? raw : typeof raw === 'string' ? readNumber(raw.trim()) : undefined;
    if (n === undefined) return undefined;
    seconds = format === 'ms' ? n / 1000 : n;
  }
  // RFC 8428 §4.5.3: below 2**28 a SenML time is relative; a device's clock that says 1970
  // has not been set, and its readings would be refused later as a whole batch.
  if (seconds === undefined || !Number.isFinite(seconds)) return undefined;
  return seconds >= SENML_RELATIVE_TIME_LIMIT && seconds <= MAX_EPOCH_S ? seconds : undefined;
}

/** Control characters (except tab) or U+FFFD (bytes that were not UTF-8). */
function hasBadChar(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const code = line.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f || code === 0xfffd) return true;
  }
  return false;
}

function namedGroups(re: RegExp): string[] {
  // A successful match of the empty alternative lists every group name.
  const probe = new RegExp(`${re.source}|`, re.flags.replace(/[gy]/g, '')).exec('');
  return Object.keys(probe?.groups ?? {});
}

const fail = (reason: string): ParseResult => ({ ok: false, reason });

/** Collects values of one line, applying the allow-list and the duplicate check. */
class ValueCollector {
  readonly values: ParsedValue[] = [];
  readonly #seen = new Set<string>();
  reason: string | undefined;

  constructor(readonly allow: ReadonlySet<string> | undefined) {}

  /** False (and `reason` set) when the line must be refused. */
  add(metric: string, value: SourceValue | undefined | null): boolean {
    if (!METRIC_NAME_PATTERN.test(metric)) return this.#fail('metric');
    if (this.allow !== undefined && !this.allow.has(metric)) return true;
    if (this.#seen.has(metric)) return this.#fail('duplicate');
    this.#seen.add(metric);
    if (value === null) return this.#fail('value');
    if (value !== undefined) this.values.push([metric, value]);
    return true;
  }

  #fail(reason: string): false {
    this.reason = reason;
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Parsers

abstract class BaseParser implements LineParser {
  abstract readonly type: ParserType;
  readonly maxLineLength: number;
  readonly #units: ReadonlyMap<string, string>;
  protected readonly allow: ReadonlySet<string> | undefined;

  constructor(
    config: { units: Record<string, string>; metrics?: string[] | undefined },
    maxLineLength: number,
  ) {
    this.maxLineLength = maxLineLength;
    this.#units = new Map(Object.entries(config.units));
    this.allow = config.metrics === undefined ? undefined : new Set(config.metrics);
  }

  unit(metric: string): string | undefined {
    return this.#units.get(metric);
  }

  parse(line: string): ParseResult {
    if (line.length > this.maxLineLength) return fail('too_long');
    if (line.trim().length === 0) return fail('empty');
    return this.parseLine(line);
  }

  reset(): void {}

  protected abstract parseLine(line: string): ParseResult;
}

/** PROTOCOL.md §10 through `@outpost/protocol/serial-line`: CRC-8 checked there. */
class OutpostLineParser extends BaseParser {
  readonly type = 'outpost-line';

  constructor(config: z.output<typeof outpostLineParserSchema>) {
    super(config, MAX_SERIAL_LINE_LENGTH);
  }

  protected parseLine(line: string): ParseResult {
    const parsed = parseLine(line);
    switch (parsed.kind) {
      case 'invalid':
        return fail(parsed.reason);
      case 'reading': {
        const allow = this.allow;
        const values =
          allow === undefined ? parsed.values : parsed.values.filter(([m]) => allow.has(m));
        return { ok: true, values };
      }
      default:
        return { ok: true, values: [], frame: parsed };
    }
  }
}

/** Generic parsers share the charset check, key mapping and string policy. */
abstract class TextParser extends BaseParser {
  protected readonly strings: boolean;
  protected readonly map: ReadonlyMap<string, string> | undefined;

  constructor(config: {
    units: Record<string, string>;
    metrics?: string[] | undefined;
    maxLineLength: number;
    strings: boolean;
    map?: Record<string, string> | undefined;
  }) {
    super(config, config.maxLineLength);
    this.strings = config.strings;
    this.map = config.map === undefined ? undefined : new Map(Object.entries(config.map));
  }

  override parse(line: string): ParseResult {
    if (line.length > this.maxLineLength) return fail('too_long');
    if (hasBadChar(line)) return fail('charset');
    return super.parse(line);
  }

  /** The metric a source key maps to; undefined when a `map` leaves it out. */
  protected metricOf(key: string): string | undefined {
    return this.map === undefined ? key : this.map.get(key);
  }
}

/** `t=21.5 h=40`, separators configurable. */
class KvParser extends TextParser {
  readonly type = 'kv';
  readonly #pairSeparator: string;
  readonly #kvSeparator: string;
  readonly #time: { key: string; format: TimeFormat } | undefined;

  constructor(config: z.output<typeof kvParserSchema>) {
    super(config);
    this.#pairSeparator = config.pairSeparator;
    this.#kvSeparator = config.kvSeparator;
    this.#time = config.time;
  }

  protected parseLine(line: string): ParseResult {
    const tokens =
      this.#pairSeparator === ' ' ? line.trim().split(/[ \t]+/) : line.split(this.#pairSeparator);
    const values = new ValueCollector(this.allow);
    let time: number | undefined;
    for (const token of tokens) {
      if (token.trim().length === 0) continue;
      const at = token.indexOf(this.#kvSeparator);
      if (at <= 0) return fail('syntax');
      const key = token.slice(0, at).trim();
      const text = token.slice(at + this.#kvSeparator.length);
      if (this.#time !== undefined && key === this.#time.key) {
        time = readTime(text.trim(), this.#time.format);
        if (time === undefined) return fail('time');
        continue;
      }
      const metric = this.metricOf(key);
      if (metric === undefined) continue;
      if (!values.add(metric, readText(text, this.strings))) return fail(values.reason!);
    }
    return time === undefined
      ? { ok: true, values: values.values }
      : { ok: true, values: values.values, time };
  }
}

type ColumnPlan =
  | { kind: 'skip' }
  | { kind: 'time' }
  | { kind: 'metric'; metric: string }
  | { kind: 'invalid' };

/** Delimited columns; RFC 4180 double quotes are understood. */
class CsvParser extends TextParser {
  readonly type = 'csv';
  readonly #delimiter: string;
  readonly #fixedHeader: readonly string[] | undefined;
  readonly #time: { column: string; format: TimeFormat } | undefined;
  #plan: ColumnPlan[] | undefined;

  constructor(config: z.output<typeof csvParserSchema>) {
    super(config);
    this.#delimiter = config.delimiter;
    this.#time = config.time;
    this.#fixedHeader = Array.isArray(config.header) ? config.header : undefined;
    this.#plan = this.#fixedHeader === undefined ? undefined : this.#planFor(this.#fixedHeader);
  }

  override reset(): void {
    if (this.#fixedHeader === undefined) this.#plan = undefined;
  }

  #planFor(header: readonly string[]): ColumnPlan[] {
    return header.map((name): ColumnPlan => {
      if (name === this.#time?.column) return { kind: 'time' };
      const metric = this.metricOf(name);
      if (metric === undefined) return { kind: 'skip' };
      return METRIC_NAME_PATTERN.test(metric) ? { kind: 'metric', metric } : { kind: 'invalid' };
    });
  }

  protected parseLine(line: string): ParseResult {
    const cells = splitCsv(line, this.#delimiter);
    if (cells === undefined) return fail('syntax');
    if (this.#fixedHeader === undefined && cells.every((c) => readNumber(c.trim()) === undefined)) {
      const header = cells.map((c) => c.trim());
      if (header.some((name) => name.length === 0) || new Set(header).size !== header.length) {
        return fail('header');
      }
      this.#plan = this.#planFor(header);
      return { ok: true, values: [] };
    }
    const plan = this.#plan;
    if (plan === undefined) return fail('no_header');
    if (cells.length !== plan.length) return fail('columns');
    const values = new ValueCollector(this.allow);
    let time: number | undefined;
    for (let i = 0; i < plan.length; i++) {
      const column = plan[i]!;
      const cell = cells[i]!;
      if (column.kind === 'skip') continue;
      if (column.kind === 'invalid') return fail('metric');
      if (column.kind === 'time') {
        time = readTime(cell.trim(), this.#time!.format);
        if (time === undefined) return fail('time');
        continue;
      }
      if (!values.add(column.metric, readText(cell, this.strings))) return fail(values.reason!);
    }
    return time === undefined
      ? { ok: true, values: values.values }
      : { ok: true, values: values.values, time };
  }
}

/** Splits one CSV line; undefined for an unbalanced quote. */
export function splitCsv(line: string, delimiter: string): string[] | undefined {
  if (!line.includes('"')) return line.split(delimiter);
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch !== '"') cell += ch;
      else if (line[i + 1] === '"') {
        cell += '"';
        i++;
      } else quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === delimiter) {
      cells.push(cell);
      cell = '';
    } else cell += ch;
  }
  if (quoted) return undefined;
  cells.push(cell);
  return cells;
}

/** Deepest nesting read from a JSON object when no `map` is given. */
const MAX_JSON_DEPTH = 4;

type JsonValue = SourceValue | undefined | null;

/**
 * A JSON value as a reading value. `lenient` (no `map`): values that cannot be readings are
 * skipped; otherwise they refuse the line. Numeric strings read as numbers.
 */
function jsonValue(value: unknown, strings: boolean, lenient: boolean): JsonValue {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const number = readNumber(value.trim());
    if (number !== undefined) return number;
    if (strings && value.length <= MAX_STRING_VALUE_LENGTH) return value;
  }
  return lenient ? undefined : null;
}

/** Own-property lookup of a dotted path; never reads inherited members. */
export function jsonPath(object: unknown, path: string): unknown {
  let current: unknown = object;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export interface JsonMapping {
  map: ReadonlyMap<string, string> | undefined;
  time: { field: string; format: TimeFormat } | undefined;
  strings: boolean;
  allow: ReadonlySet<string> | undefined;
}

/**
 * Metrics of one JSON object: mapped paths, or else every scalar leaf under its dotted path
 * (nested objects up to {@link MAX_JSON_DEPTH} levels). Shared by `jsonl` lines and JSON
 * MQTT payloads.
 */
export function jsonValues(object: unknown, mapping: JsonMapping): ParseResult {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    return fail('json');
  }
  const values = new ValueCollector(mapping.allow);
  let time: number | undefined;
  if (mapping.time !== undefined) {
    const raw = jsonPath(object, mapping.time.field);
    if (raw !== undefined && raw !== null) {
      time = readTime(raw, mapping.time.format);
      if (time === undefined) return fail('time');
    }
  }
  if (mapping.map !== undefined) {
    for (const [path, metric] of mapping.map) {
      if (!values.add(metric, jsonValue(jsonPath(object, path), mapping.strings, false))) {
        return fail(values.reason!);
      }
    }
  } else {
    const skip = mapping.time?.field;
    const walk = (node: object, prefix: string, depth: number): boolean => {
      for (const [key, value] of Object.entries(node)) {
        const path = prefix + key;
        if (path === skip) continue;
        if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
          if (depth < MAX_JSON_DEPTH && !walk(value, `${path}.`, depth + 1)) return false;
          continue;
        }
        const read = jsonValue(value, mapping.strings, true);
        if (read !== undefined && !values.add(path, read)) return false;
      }
      return true;
    };
    if (!walk(object, '', 1)) return fail(values.reason!);
  }
  return time === undefined
    ? { ok: true, values: values.values }
    : { ok: true, values: values.values, time };
}

/** One JSON object per line. */
class JsonlParser extends TextParser {
  readonly type = 'jsonl';
  readonly #mapping: JsonMapping;

  constructor(config: z.output<typeof jsonlParserSchema>) {
    super(config);
    this.#mapping = {
      map: this.map,
      time: config.time,
      strings: config.strings,
      allow: this.allow,
    };
  }

  protected parseLine(line: string): ParseResult {
    let object: unknown;
    try {
      object = JSON.parse(line);
    } catch {
      return fail('json');
    }
    return jsonValues(object, this.#mapping);
  }
}

/** Named groups of a regular expression are the metrics. */
class RegexParser extends TextParser {
  readonly type = 'regex';
  readonly #re: RegExp;
  readonly #groups: readonly string[];
  readonly #timeFormat: TimeFormat | undefined;

  constructor(config: z.output<typeof regexParserSchema>) {
    super(config);
    this.#re = new RegExp(config.pattern, config.flags);
    this.#groups = namedGroups(this.#re).filter((g) => g !== 'time');
    this.#timeFormat = config.time?.format;
  }

  protected parseLine(line: string): ParseResult {
    const groups = this.#re.exec(line)?.groups;
    if (groups === undefined) return fail('no_match');
    const values = new ValueCollector(this.allow);
    for (const group of this.#groups) {
      const metric = this.metricOf(group);
      if (metric === undefined) continue;
      const text = groups[group];
      if (!values.add(metric, text === undefined ? undefined : readText(text, this.strings))) {
        return fail(values.reason!);
      }
    }
    if (this.#timeFormat === undefined || groups.time === undefined) {
      return { ok: true, values: values.values };
    }
    const time = readTime(groups.time, this.#timeFormat);
    return time === undefined ? fail('time') : { ok: true, values: values.values, time };
  }
}

/** A parser for a validated `parser:` config (see {@link parserConfigSchema}). */
export function createParser(config: ParserConfig): LineParser {
  switch (config.type) {
    case 'outpost-line':
      return new OutpostLineParser(config);
    case 'kv':
      return new KvParser(config);
    case 'csv':
      return new CsvParser(config);
    case 'jsonl':
      return new JsonlParser(config);
    case 'regex':
      return new RegexParser(config);
  }
}
