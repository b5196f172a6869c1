import { describe, expect, it } from 'vitest';
import {
  escapeMeasurement,
  escapeTag,
  MAX_POINT_TAGS,
  quoteString,
  registryTagSet,
  storedName,
  toLine,
  toLines,
  UnwritablePoint,
} from './line-protocol.js';
import type { TelemetryPoint } from './telemetry-store.js';

const T = 1_700_000_000_123;
const point = (over: Partial<TelemetryPoint> = {}): TelemetryPoint => ({
  device: 'dev-1',
  metric: 'temp',
  timeMs: T,
  value: 21.5,
  tags: {},
  ...over,
});

describe('toLine', () => {
  it('writes the schema: measurement = metric, device tag, value field, ms timestamp', () => {
    expect(toLine(point())).toBe(`temp,device=dev-1 value=21.5 ${T}`);
  });

  it('writes integers as floats (no `i` suffix), so a metric keeps one field type', () => {
    expect(toLine(point({ value: 42 }))).toBe(`temp,device=dev-1 value=42 ${T}`);
    expect(toLine(point({ value: -0 }))).toBe(`temp,device=dev-1 value=0 ${T}`);
    expect(toLine(point({ value: 1e21 }))).toBe(`temp,device=dev-1 value=1e+21 ${T}`);
    expect(toLine(point({ value: 5e-7 }))).toBe(`temp,device=dev-1 value=5e-7 ${T}`);
  });

  it('writes strings to `text` and booleans to `flag`', () => {
    expect(toLine(point({ value: 'open' }))).toBe(`temp,device=dev-1 text="open" ${T}`);
    expect(toLine(point({ value: true }))).toBe(`temp,device=dev-1 flag=true ${T}`);
    expect(toLine(point({ value: false }))).toBe(`temp,device=dev-1 flag=false ${T}`);
  });

  it('adds registry tags as sorted t_* tags, then the unit, then the markers', () => {
    const line = toLine(
      point({ tags: { zone: 'b', site: 'north' }, unit: 'Cel', backfilled: true, unsynced: true }),
    );
    expect(line).toBe(
      `temp,device=dev-1,t_site=north,t_zone=b,unit=Cel value=21.5,backfilled=true,unsynced=true ${T}`,
    );
  });

  it('leaves markers out when false and empty tag values out entirely', () => {
    const line = toLine(point({ tags: { empty: '', site: 'x' }, backfilled: false, unit: '' }));
    expect(line).toBe(`temp,device=dev-1,t_site=x value=21.5 ${T}`);
  });

  it(`keeps at most ${MAX_POINT_TAGS} registry tags, chosen by sorted key`, () => {
    const tags = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`k${String(i).padStart(2, '0')}`, 'v']),
    );
    const set = registryTagSet(tags);
    expect(set.split(',').filter(Boolean)).toHaveLength(MAX_POINT_TAGS);
    expect(set).toContain('t_k31=v');
    expect(set).not.toContain('t_k32');
  });

  it('refuses non-finite numbers and non-integer times', () => {
    expect(() => toLine(point({ value: Number.NaN }))).toThrow(UnwritablePoint);
    expect(() => toLine(point({ value: Number.POSITIVE_INFINITY }))).toThrow(UnwritablePoint);
    expect(() => toLine(point({ timeMs: 1.5 }))).toThrow(UnwritablePoint);
    expect(() => toLine(point({ value: null as unknown as number }))).toThrow(UnwritablePoint);
  });

  it('joins lines with newlines', () => {
    expect(toLines([point(), point({ timeMs: T + 1, value: 1 })])).toBe(
      `temp,device=dev-1 value=21.5 ${T}\ntemp,device=dev-1 value=1 ${T + 1}`,
    );
    expect(toLines([])).toBe('');
  });
});

describe('escaping', () => {
  it('escapes commas and spaces in measurements, but not `=` or quotes', () => {
    expect(escapeMeasurement('a b,c=d"e')).toBe('a\\ b\\,c=d"e');
    expect(escapeMeasurement('temp.c_1-x')).toBe('temp.c_1-x');
  });

  it('escapes commas, `=` and spaces in tag keys and values', () => {
    expect(escapeTag('a b,c=d')).toBe('a\\ b\\,c\\=d');
    expect(escapeTag(`it's "quoted"`)).toBe(`it's\\ "quoted"`);
  });

  it('keeps a backslash before an ordinary character literal', () => {
    expect(escapeTag('C:\\temp')).toBe('C:\\temp');
    expect(escapeMeasurement('a\\b')).toBe('a\\b');
  });

  it('stores a backslash that parsers disagree on as U+FF3C, and controls as U+FFFD', () => {
    expect(storedName('x\\')).toBe('x\uFF3C');
    expect(storedName('a\\ b')).toBe('a\uFF3C b');
    expect(storedName('a\\,b\\=c')).toBe('a\uFF3C,b\uFF3C=c');
    expect(storedName('p\\\\q')).toBe('p\uFF3C\\q');
    expect(storedName('line\nbreak\t')).toBe('line\uFFFDbreak\uFFFD');
    expect(escapeTag('a\\ b')).toBe('a\uFF3C\\ b');
    expect(escapeMeasurement('x\\')).toBe('x\uFF3C');
  });

  it('is the identity for protocol-valid names', () => {
    for (const name of ['dev-1', 'gw.north_7', 'Temp_C', 'a-b.c']) {
      expect(storedName(name)).toBe(name);
      expect(escapeTag(name)).toBe(name);
    }
  });

  it('quotes string fields escaping only backslashes and double quotes', () => {
    expect(quoteString('say "hi"\\now')).toBe('"say \\"hi\\"\\\\now"');
    expect(quoteString('a, b=c d')).toBe('"a, b=c d"');
    expect(quoteString('two\nlines')).toBe('"two\nlines"');
  });

  it('writes a whole hostile point', () => {
    const line = toLine(
      point({
        device: 'dev "1", x=y',
        metric: 'm 1,2',
        unit: 'm/s 2',
        tags: { site: 'north, =east' },
        value: 'a "b" \\ c',
      }),
    );
    expect(line).toBe(
      `m\\ 1\\,2,device=dev\\ "1"\\,\\ x\\=y,t_site=north\\,\\ \\=east,unit=m/s\\ 2 text="a \\"b\\" \\\\ c" ${T}`,
    );
  });
});

describe('which characters need escaping', () => {
  it('is exactly backslash, comma, `=`, space and Unicode Cc, for every UTF-16 code unit', () => {
    const careful = /[\\,= \p{Cc}]/u;
    for (let c = 0; c <= 0xffff; c++) {
      // Last, so that a backslash is one parsers disagree on.
      const text = `a${String.fromCharCode(c)}`;
      expect(escapeTag(text) !== text, `U+${c.toString(16)}`).toBe(careful.test(text));
    }
  });
});
