import { formatReading } from '@outpost/protocol/serial-line';
import { describe, expect, it } from 'vitest';
import {
  createParser,
  type LineParser,
  type ParseResult,
  type ParserConfigInput,
  parserConfigSchema,
  readTime,
  splitCsv,
} from './line-parsers.js';

const T0 = 1_767_225_600; // 2026-01-01T00:00:00Z

function parser(config: ParserConfigInput): LineParser {
  return createParser(parserConfigSchema.parse(config) as never);
}

function values(result: ParseResult): Record<string, unknown> {
  if (!result.ok) throw new Error(`expected ok, got ${result.reason}`);
  return Object.fromEntries(result.values);
}

function reason(result: ParseResult): string {
  if (result.ok) throw new Error('expected a refusal');
  return result.reason;
}

describe('outpost-line (PROTOCOL.md §10, through @outpost/protocol/serial-line)', () => {
  const p = parser('outpost-line');
  const good = formatReading([
    ['t', 21.5],
    ['h', 40],
  ]).trimEnd();

  it('reads a reading with a good CRC-8', () => {
    expect(values(p.parse(good))).toEqual({ t: 21.5, h: 40 });
  });

  it.each([
    ['bad CRC', good.replace(/\*[0-9A-F]{2}$/, (m) => (m === '*00' ? '*01' : '*00')), 'crc'],
    ['partial line (cut before the CRC)', good.slice(0, 8), 'syntax'],
    ['garbage', '\u00ff\u00fe\u0001zz', 'charset'],
    ['unknown keyword', 'HELLO world', 'unknown'],
    ['overlong', `R ${'x'.repeat(1100)}`, 'too_long'],
    ['empty', '', 'empty'],
  ])('refuses %s', (_name, line, why) => {
    expect(reason(p.parse(line))).toBe(why);
  });

  it('hands identity lines over as frames', () => {
    const result = p.parse('ID th-v2 BR0001 1.4.2');
    expect(result).toEqual({
      ok: true,
      values: [],
      frame: { kind: 'id', hardware: 'th-v2', serial: 'BR0001', version: '1.4.2' },
    });
  });

  it('applies the metric allow-list and units', () => {
    const q = parser({ type: 'outpost-line', metrics: ['t'], units: { t: 'Cel' } });
    expect(values(q.parse(good))).toEqual({ t: 21.5 });
    expect(q.unit('t')).toBe('Cel');
    expect(q.unit('h')).toBeUndefined();
  });
});

describe('kv', () => {
  it.each([
    ['t=21.5 h=40', {}, { t: 21.5, h: 40 }],
    ['  t=21.5\th=40  ', {}, { t: 21.5, h: 40 }],
    ['t:21.5;h:40', { pairSeparator: ';', kvSeparator: ':' }, { t: 21.5, h: 40 }],
    ['t=21.5 h=40 fw=abc', { metrics: ['t'] }, { t: 21.5 }],
    ['temp=21.5 rh=40', { map: { temp: 'temperature' } }, { temperature: 21.5 }],
    ['on=true t=-1e2', {}, { on: true, t: -100 }],
    ['state=idle', { strings: true }, { state: 'idle' }],
    ['t= h=40', {}, { h: 40 }],
  ])('%j with %j', (line, options, expected) => {
    expect(values(parser({ type: 'kv', ...options }).parse(line))).toEqual(expected);
  });

  it.each([
    ['a pair without separator', 't21.5', 'syntax'],
    ['a pair without key', '=5', 'syntax'],
    ['a non-numeric value', 't=abc', 'value'],
    ['a value beyond a double', 't=1e999', 'value'],
    ['a metric twice', 't=1 t=2', 'duplicate'],
    ['a bad metric name', '_t=1', 'metric'],
    ['a NUL byte', 't=1\u0000', 'charset'],
    ['bytes that were not UTF-8', 't=1 \ufffd=2', 'charset'],
    ['only blanks', '   ', 'empty'],
    ['a line over 1024 characters', `t=${'1'.repeat(2000)}`, 'too_long'],
  ])('refuses %s', (_name, line, why) => {
    expect(reason(parser('kv').parse(line))).toBe(why);
  });

  it('reads a time key', () => {
    const p = parser({ type: 'kv', time: { key: 'ts', format: 'ms' } });
    expect(p.parse(`ts=${T0 * 1000 + 250} t=1`)).toEqual({
      ok: true,
      values: [['t', 1]],
      time: T0 + 0.25,
    });
    expect(reason(p.parse('ts=12 t=1'))).toBe('time');
  });

  it('refuses equal separators in the config', () => {
    expect(parserConfigSchema.safeParse({ type: 'kv', pairSeparator: '=' }).success).toBe(false);
  });
});

describe('csv', () => {
  it('maps a fixed header, with a time column', () => {
    const p = parser({
      type: 'csv',
      header: ['ts', 'temp_c', 'rh', 'note'],
      map: { temp_c: 'temperature', rh: 'humidity' },
      time: { column: 'ts', format: 's' },
      units: { temperature: 'Cel', humidity: '%RH' },
    });
    expect(p.parse(`${T0},21.5,40,hello`)).toEqual({
      ok: true,
      values: [
        ['temperature', 21.5],
        ['humidity', 40],
      ],
      time: T0,
    });
    expect(p.unit('humidity')).toBe('%RH');
    expect(reason(p.parse(`${T0},21.5`))).toBe('columns');
    expect(reason(p.parse(`${T0},warm,40,x`))).toBe('value');
    expect(reason(p.parse(`1970,21.5,40,x`))).toBe('time');
  });

  it('skips empty cells', () => {
    const p = parser({ type: 'csv', header: ['t', 'h'] });
    expect(values(p.parse('21.5,'))).toEqual({ t: 21.5 });
  });

  it('learns the header from the stream and forgets it on reset', () => {
    const p = parser({ type: 'csv', header: 'line' });
    expect(reason(p.parse('21.5,40'))).toBe('no_header');
    expect(p.parse('t,h')).toEqual({ ok: true, values: [] });
    expect(values(p.parse('21.5,40'))).toEqual({ t: 21.5, h: 40 });
    expect(p.parse('h,t')).toEqual({ ok: true, values: [] }); // a reboot printed a new header
    expect(values(p.parse('40,21.5'))).toEqual({ t: 21.5, h: 40 });
    p.reset();
    expect(reason(p.parse('21.5,40'))).toBe('no_header');
    expect(p.parse('Temp (C),h')).toEqual({ ok: true, values: [] });
    expect(reason(p.parse('21.5,40'))).toBe('metric'); // a column name that is no metric
  });

  it('understands quotes', () => {
    expect(splitCsv('"a,b",1,"say ""hi"""', ',')).toEqual(['a,b', '1', 'say "hi"']);
    expect(splitCsv('"open,1', ',')).toBeUndefined();
    const p = parser({ type: 'csv', header: ['t', 'h'] });
    expect(reason(p.parse('"21.5,40'))).toBe('syntax');
  });

  it('validates the header config', () => {
    const bad = (extra: object) =>
      parserConfigSchema.safeParse({ type: 'csv', header: ['a', 'b'], ...extra }).success;
    expect(bad({ time: { column: 'c' } })).toBe(false);
    expect(bad({ map: { c: 'x' } })).toBe(false);
    expect(parserConfigSchema.safeParse({ type: 'csv', header: ['Temp (C)'] }).success).toBe(false);
    expect(parserConfigSchema.safeParse({ type: 'csv', header: ['a', 'a'] }).success).toBe(false);
  });
});

describe('jsonl', () => {
  it('reads every scalar leaf by its dotted path', () => {
    const p = parser('jsonl');
    expect(values(p.parse('{"t":21.5,"env":{"h":40,"ok":true},"id":"abc","tags":[1]}'))).toEqual({
      t: 21.5,
      'env.h': 40,
      'env.ok': true,
    });
  });

  it('maps fields and reads a time field', () => {
    const p = parser({
      type: 'jsonl',
      map: { 'env.temp': 'temperature', 'env.hum': 'humidity' },
      time: { field: 'ts', format: 'iso' },
    });
    expect(p.parse('{"ts":"2026-01-01T00:00:01Z","env":{"temp":"21.5","hum":40}}')).toEqual({
      ok: true,
      values: [
        ['temperature', 21.5],
        ['humidity', 40],
      ],
      time: T0 + 1,
    });
    expect(reason(p.parse('{"ts":"yesterday","env":{"temp":1}}'))).toBe('time');
    expect(reason(p.parse('{"env":{"temp":"warm"}}'))).toBe('value');
  });

  it.each([
    ['{"t":', 'json'],
    ['[1,2]', 'json'],
    ['42', 'json'],
    ['{"t":1,"t":2}', undefined], // JSON.parse keeps the last; not a duplicate
    ['{"_x":1}', 'metric'],
  ])('%j', (line, why) => {
    const result = parser('jsonl').parse(line);
    if (why === undefined) expect(result.ok).toBe(true);
    else expect(reason(result)).toBe(why);
  });

  it('never reads inherited members', () => {
    const p = parser({ type: 'jsonl', map: { 'constructor.name': 'x', __proto__: 'y' } });
    expect(values(p.parse('{"a":1}'))).toEqual({});
  });
});

describe('regex', () => {
  const p = parser({
    type: 'regex',
    pattern: '^T(?<temperature>-?\\d+(?:\\.\\d+)?)C H(?<humidity>\\d+)%(?: @(?<time>\\d+))?$',
    time: { format: 's' },
    units: { temperature: 'Cel' },
  });

  it('reads named groups, with an optional time group', () => {
    expect(values(p.parse('T21.5C H40%'))).toEqual({ temperature: 21.5, humidity: 40 });
    expect(p.parse(`T-3C H90% @${T0}`)).toEqual({
      ok: true,
      values: [
        ['temperature', -3],
        ['humidity', 90],
      ],
      time: T0,
    });
  });

  it.each([
    ['hello', 'no_match'],
    ['T21.5C H40% @5', 'time'],
    ['', 'empty'],
  ])('refuses %j', (line, why) => {
    expect(reason(p.parse(line))).toBe(why);
  });

  it('refuses patterns that do not compile or name no group', () => {
    expect(parserConfigSchema.safeParse({ type: 'regex', pattern: '(' }).success).toBe(false);
    expect(parserConfigSchema.safeParse({ type: 'regex', pattern: '\\d+' }).success).toBe(false);
    expect(
      parserConfigSchema.safeParse({ type: 'regex', pattern: '(?<a>x)', flags: 'g' }).success,
    ).toBe(false);
  });
});

describe('readTime', () => {
  it.each([
    [T0, 's', T0],
    [`${T0 * 1000}`, 'ms', T0],
    ['2026-01-01T01:00:00+01:00', 'iso', T0],
    [5, 's', undefined], // 1970: an unset clock
    [1e12, 's', undefined], // milliseconds read as seconds
    ['2026-01-01', 'iso', undefined],
    [true, 's', undefined],
  ] as const)('%j as %s', (raw, format, expected) => {
    expect(readTime(raw, format)).toBe(expected);
  });
});

describe('never throws', () => {
  it('on any of a set of hostile lines, whatever the parser', () => {
    const parsers = [
      parser('outpost-line'),
      parser('kv'),
      parser({ type: 'csv', header: 'line' }),
      parser('jsonl'),
      parser({ type: 'regex', pattern: '(?<a>\\d+)' }),
    ];
    const lines = [
      '',
      '=',
      ',',
      '{',
      '"',
      '\u0000',
      'R *00',
      'a'.repeat(70_000),
      '{"a":{"b":{"c":{"d":{"e":1}}}}}',
      '{"__proto__":{"x":1}}',
    ];
    for (const p of parsers) {
      for (const line of lines) expect(() => p.parse(line)).not.toThrow();
    }
  });
});
