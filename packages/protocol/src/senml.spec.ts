import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppError, ProtocolError } from './errors.js';
import { realisticReadings } from './fixtures/batches.js';
import { RFC_NOW, RFC8428_EXAMPLES } from './fixtures/rfc8428.js';
import { anyPack, anyRecord } from './fixtures/senml-inputs.js';
import { MAX_RECORDS_PER_BATCH, MAX_STRING_VALUE_LENGTH } from './limits.js';
import {
  compressPack,
  parseSenmlPack,
  type Reading,
  type ResolvedRecord,
  resolveReadings,
  resolveSenml,
  SENML_RELATIVE_TIME_LIMIT,
  type SenmlRecord,
  senmlPackSchema,
  senmlParseError,
  senmlRecordSchema,
  toReadings,
  tryParseSenmlPack,
  tryParseSenmlRecord,
} from './senml.js';

/** Property runs take seconds on a busy machine. */
const PROPERTY_TIMEOUT_MS = 60_000;

const NOW = 1_800_000_000;

function resolve(pack: unknown, now = NOW): ResolvedRecord[] {
  return resolveSenml(parseSenmlPack(pack), { now });
}

/** Runs `fn` and returns the ProtocolError it throws. */
function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('RFC 8428 §5.1 examples', () => {
  it.each(RFC8428_EXAMPLES.map((example) => [example.section, example.title, example] as const))(
    '§%s %s',
    (_section, _title, example) => {
      const resolved = resolve(JSON.parse(example.json), RFC_NOW);
      expect(resolved).toHaveLength(example.resolved.length);
      resolved.forEach(({ index: _index, t, ...rest }, i) => {
        const { t: expectedT, ...expectedRest } = example.resolved[i]!;
        expect(rest).toStrictEqual(expectedRest);
        expect(t).toBeCloseTo(expectedT, 6);
      });
    },
  );

  it('keeps the pack index of each resolved record (§5.1.7 skips the base-only record)', () => {
    const example = RFC8428_EXAMPLES.find((e) => e.section === '5.1.7')!;
    expect(resolve(JSON.parse(example.json), RFC_NOW).map((r) => r.index)).toEqual([1, 2, 3]);
  });

  it('refuses the RFC names as Outpost readings: they are neither <metric> nor <id>/<metric>', () => {
    const example = RFC8428_EXAMPLES.find((e) => e.section === '5.1.1')!;
    const err = protocolError(() => toReadings(resolve(JSON.parse(example.json)), 'gw-1'));
    expect(err.code).toBe('senml_name');
    expect(err.details).toMatchObject({ index: 0 });
  });
});

describe('senml record schema', () => {
  it.each([
    ['an unknown field', [{ n: 'a', v: 1, foo: 1 }], 'senml_invalid'],
    [
      'a must-understand field (RFC 8428 §4.4)',
      [{ n: 'a', v: 1, foo_: 1 }],
      'senml_must_understand',
    ],
    ['NaN built in code', [{ n: 'a', v: Number.NaN }], 'senml_invalid'],
    ['Infinity built in code', [{ n: 'a', v: Number.POSITIVE_INFINITY }], 'senml_invalid'],
    ['a non-integer bver', [{ bver: 1.5, n: 'a', v: 1 }], 'senml_invalid'],
    ['a string number', [{ n: 'a', v: '1' }], 'senml_invalid'],
    ['vd that is not base64url', [{ n: 'a', vd: 'a+b/' }], 'senml_invalid'],
    ['an unknown cq', [{ n: 'a', v: 1, cq: 'good' }], 'senml_invalid'],
    ['a non-boolean bf', [{ n: 'a', v: 1, bf: 1 }], 'senml_invalid'],
    ['a negative ut', [{ n: 'a', v: 1, ut: -1 }], 'senml_invalid'],
    ['an empty unit', [{ n: 'a', v: 1, u: '' }], 'senml_invalid'],
    ['a lone surrogate in vs', [{ n: 'a', vs: '\ud800' }], 'senml_invalid'],
    ['U+0000 in a name', [{ n: 'a\u0000', v: 1 }], 'senml_invalid'],
    ['an empty pack', [], 'senml_invalid'],
    ['an object instead of a pack', { n: 'a', v: 1 }, 'senml_invalid'],
    ['a record that is not an object', [1], 'senml_invalid'],
  ])('refuses %s', (_what, input, code) => {
    expect(protocolError(() => parseSenmlPack(input)).code).toBe(code);
  });

  it('reports the index and path of the offending record', () => {
    const err = protocolError(() =>
      parseSenmlPack([
        { n: 'a', v: 1 },
        { n: 'b', v: 'x' },
      ]),
    );
    expect(err.details).toMatchObject({ index: 1, issues: [{ path: '1.v' }] });
    expect(err.message).toContain('record 1');
  });

  it('names the must-understand field even when another record fails first', () => {
    const err = protocolError(() =>
      parseSenmlPack([
        { n: 'a', v: 'x' },
        { n: 'b', v: 1, z_: 1 },
      ]),
    );
    expect(err.code).toBe('senml_must_understand');
    expect(err.details).toMatchObject({ index: 1 });
  });

  it('bounds vs by MAX_STRING_VALUE_LENGTH', () => {
    expect(() =>
      parseSenmlPack([{ n: 'a', vs: 'x'.repeat(MAX_STRING_VALUE_LENGTH) }]),
    ).not.toThrow();
    const err = protocolError(() =>
      parseSenmlPack([{ n: 'a', vs: 'x'.repeat(MAX_STRING_VALUE_LENGTH + 1) }]),
    );
    expect(err.details).toMatchObject({ index: 0, issues: [{ path: '0.vs' }] });
  });

  it('accepts the PROTOCOL.md §5 extensions bf and cq', () => {
    expect(parseSenmlPack([{ n: 'a', v: 1, bf: true, cq: 'unsynced' }])).toEqual([
      { n: 'a', v: 1, bf: true, cq: 'unsynced' },
    ]);
  });
});

/** Equal values with the same keys in the same order, `undefined` members and -0 included. */
function expectSameParse(fast: unknown, zod: unknown): void {
  expect(fast).toStrictEqual(zod);
  expect(JSON.stringify(fast, (_k, v) => (v === undefined ? '<undefined>' : v))).toBe(
    JSON.stringify(zod, (_k, v) => (v === undefined ? '<undefined>' : v)),
  );
}

describe('the zod-free record and pack parsers', () => {
  it(
    'accept exactly what senmlRecordSchema accepts, with the same output',
    () => {
      fc.assert(
        fc.property(anyRecord, (input) => {
          const zod = senmlRecordSchema.safeParse(input);
          const fast = tryParseSenmlRecord(input);
          if (zod.success) expectSameParse(fast, zod.data);
          else expect(fast).toBeUndefined();
        }),
        { numRuns: 10_000 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    'accept exactly what senmlPackSchema accepts, with the same output',
    () => {
      fc.assert(
        fc.property(anyPack, (input) => {
          const zod = senmlPackSchema.safeParse(input);
          const fast = tryParseSenmlPack(input);
          if (zod.success) expectSameParse(fast, zod.data);
          else expect(fast).toBeUndefined();
        }),
        { numRuns: 5_000 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it('refuse at the pack bounds like the schema', () => {
    const full = Array.from({ length: MAX_RECORDS_PER_BATCH }, () => ({ n: 'a', v: 1 }));
    expect(tryParseSenmlPack(full)).toHaveLength(MAX_RECORDS_PER_BATCH);
    expect(tryParseSenmlPack([...full, { n: 'a', v: 1 }])).toBeUndefined();
    expect(tryParseSenmlPack([])).toBeUndefined();
  });

  it(
    'leave every refusal of parseSenmlPack to the schema: same code, message and details',
    () => {
      fc.assert(
        fc.property(anyPack, (input) => {
          const zod = senmlPackSchema.safeParse(input);
          if (zod.success) {
            expectSameParse(parseSenmlPack(input), zod.data);
          } else {
            const expected = senmlParseError(zod.error);
            const err = protocolError(() => parseSenmlPack(input));
            expect({ code: err.code, message: err.message, details: err.details }).toEqual({
              code: expected.code,
              message: expected.message,
              details: expected.details,
            });
          }
        }),
        { numRuns: 2_000 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe('resolveSenml', () => {
  it('adds bt to t and resolves times below 2**28 against now (RFC 8428 §4.5.3)', () => {
    const resolved = resolve([
      { n: 'a', v: 1 },
      { n: 'a', t: -10, v: 1 },
      { n: 'a', t: 5.5, v: 1 },
      { n: 'a', t: SENML_RELATIVE_TIME_LIMIT - 1, v: 1 },
      { n: 'a', t: SENML_RELATIVE_TIME_LIMIT, v: 1 },
      { bt: 1_700_000_000, n: 'a', t: -10, v: 1 },
      { bt: -5, n: 'a', v: 1 },
    ]);
    expect(resolved.map((r) => r.t)).toEqual([
      NOW,
      NOW - 10,
      NOW + 5.5,
      NOW + SENML_RELATIVE_TIME_LIMIT - 1,
      SENML_RELATIVE_TIME_LIMIT,
      1_699_999_990,
      NOW - 5,
    ]);
  });

  it('keeps each base field until a later record sets the same field', () => {
    const resolved = resolve([
      { bn: 'd1/', bt: 1_700_000_000, bu: 'Cel', n: 'a', v: 1 },
      { n: 'b', t: 1, v: 2 },
      { bn: 'd2/', n: 'a', u: 'V', v: 3 },
      { bu: '%RH', n: 'b', v: 4 },
    ]);
    expect(resolved.map(({ n, t, u }) => ({ n, t, u }))).toEqual([
      { n: 'd1/a', t: 1_700_000_000, u: 'Cel' },
      { n: 'd1/b', t: 1_700_000_001, u: 'Cel' },
      { n: 'd2/a', t: 1_700_000_000, u: 'V' },
      { n: 'd2/b', t: 1_700_000_000, u: '%RH' },
    ]);
  });

  it('adds bv to v and bs to s, and a record without a value takes the base value', () => {
    const resolved = resolve([
      { bn: 'x', bv: 100, bs: 1000 },
      { v: 1 },
      { vs: 'text' },
      { s: 5 },
      { t: 1 },
      { bv: 0, n: 'y' },
    ]);
    expect(resolved.map(({ index: _i, t: _t, n: _n, ...value }) => value)).toEqual([
      { v: 101 },
      { vs: 'text' },
      { s: 1005 },
      { v: 100 },
      { v: 0 },
    ]);
  });

  it('takes bs as s when there is no value and no bv', () => {
    expect(resolve([{ bs: 7, n: 'a' }])).toMatchObject([{ s: 7 }]);
  });

  it('treats bf and cq as per-record fields that never carry over', () => {
    const resolved = resolve([
      { bn: 'd/', n: 'a', v: 1, bf: true, cq: 'unsynced' },
      { n: 'b', v: 2 },
    ]);
    expect(resolved[0]).toMatchObject({ bf: true, cq: 'unsynced' });
    expect(resolved[1]).not.toHaveProperty('bf');
    expect(resolved[1]).not.toHaveProperty('cq');
  });

  it('carries ut through unchanged', () => {
    expect(resolve([{ n: 'a', v: 1, ut: 60 }])).toMatchObject([{ ut: 60 }]);
  });

  it.each([
    ['an empty resolved name', [{ v: 1 }], 'senml_name'],
    ['a name starting with "-"', [{ n: '-a', v: 1 }], 'senml_name'],
    ['a name starting with "_"', [{ bn: '_', n: 'a', v: 1 }], 'senml_name'],
    ['a space in a name', [{ n: 'a b', v: 1 }], 'senml_name'],
    ['a non-ASCII letter in a name', [{ n: 'tempé', v: 1 }], 'senml_name'],
    [
      'a name over the length limit',
      [{ bn: 'a'.repeat(200), n: 'b'.repeat(100), v: 1 }],
      'senml_name',
    ],
    ['two value fields', [{ n: 'a', v: 1, vs: 'x' }], 'senml_value'],
    ['a value and a sum', [{ n: 'a', v: 1, s: 1 }], 'senml_value'],
    ['a record without a value', [{ n: 'a', u: 'Cel' }], 'senml_value'],
    ['bf on a record without a value', [{ n: 'a', bf: true }], 'senml_value'],
    ['bv + v overflowing to Infinity', [{ bv: 1e308, n: 'a', v: 1e308 }], 'senml_value'],
    ['bt + t overflowing to Infinity', [{ bt: 1e308, n: 'a', t: 1e308, v: 1 }], 'senml_time'],
    ['bver newer than 10 (RFC 8428 §4.4)', [{ bver: 11, n: 'a', v: 1 }], 'senml_version'],
    [
      'two different bver',
      [
        { bver: 10, n: 'a', v: 1 },
        { bver: 9, n: 'b', v: 1 },
      ],
      'senml_version',
    ],
  ])('refuses %s', (_what, pack, code) => {
    const err = protocolError(() => resolve(pack));
    expect(err.code).toBe(code);
    expect(err.kind).toBe('invalid');
    expect(typeof err.details?.index).toBe('number');
  });

  it('reports the index of the failing record, counting base-only records', () => {
    const err = protocolError(() => resolve([{ bn: 'a' }, { n: 'b', v: 1 }, { n: ' ', v: 1 }]));
    expect(err.details).toEqual({ index: 2 });
  });

  it('refuses an oversized pack built in code', () => {
    const pack: SenmlRecord[] = Array.from({ length: 5001 }, () => ({ n: 'a', v: 1 }));
    const err = protocolError(() => resolveSenml(pack, { now: NOW }));
    expect(err.code).toBe('too_many_records');
    expect(err.kind).toBe('too_large');
  });
});

describe('toReadings', () => {
  it('maps <metric> to the publisher and <deviceId>/<metric> to that device (PROTOCOL.md §5)', () => {
    const readings = toReadings(
      resolve([
        { bt: 1_700_000_000, n: 'temp', u: 'Cel', v: 21.5, cq: 'synced' },
        { bn: 'th-01/', n: 'door', vb: true, bf: true },
        { n: 'status', t: 1.5, vs: 'ok' },
        { bn: 'gw-1/', n: 'self', v: 1 },
      ]),
      'gw-1',
    );
    expect(readings).toStrictEqual([
      {
        deviceId: 'gw-1',
        metric: 'temp',
        time: 1_700_000_000,
        value: 21.5,
        unit: 'Cel',
        backfilled: false,
        clock: 'synced',
      },
      {
        deviceId: 'th-01',
        metric: 'door',
        time: 1_700_000_000,
        value: true,
        backfilled: true,
        clock: undefined,
      },
      {
        deviceId: 'th-01',
        metric: 'status',
        time: 1_700_000_001.5,
        value: 'ok',
        backfilled: false,
        clock: undefined,
      },
      {
        deviceId: 'gw-1',
        metric: 'self',
        time: 1_700_000_000,
        value: 1,
        backfilled: false,
        clock: undefined,
      },
    ]);
  });

  it.each([
    ['an upper-case device id', [{ n: 'TH-01/temp', v: 1 }], 'senml_name'],
    ['three levels', [{ n: 'a/b/temp', v: 1 }], 'senml_name'],
    ['an empty metric', [{ n: 'th-01/', v: 1 }], 'senml_name'],
    ['a metric with ":"', [{ n: 'temp:1', v: 1 }], 'senml_name'],
    ['a metric over 64 characters', [{ n: `th-01/${'m'.repeat(65)}`, v: 1 }], 'senml_name'],
    ['a data value (vd)', [{ n: 'blob', vd: 'aGkgCg' }], 'senml_value'],
    ['a sum (s)', [{ n: 'energy', s: 10 }], 'senml_value'],
  ])('refuses %s', (_what, pack, code) => {
    const err = protocolError(() => toReadings(resolve([{ n: 'ok', v: 0 }, ...pack]), 'gw-1'));
    expect(err.code).toBe(code);
    expect(err.details).toMatchObject({ index: 1 });
  });

  it('refuses a publisher that is not a device id', () => {
    expect(protocolError(() => toReadings([], 'GW')).code).toBe('bad_device_id');
  });
});

describe('compressPack', () => {
  const base = { backfilled: false, clock: undefined } as const;

  it('uses one base name per device and offsets from a base time', () => {
    const readings: Reading[] = [
      { ...base, deviceId: 'gw-1', metric: 'temp', time: 1_700_000_000, value: 21.5, unit: 'Cel' },
      { ...base, deviceId: 'gw-1', metric: 'temp', time: 1_700_000_010, value: 21.6, unit: 'Cel' },
      { ...base, deviceId: 'th-01', metric: 'door', time: 1_700_000_010, value: true },
      { ...base, deviceId: 'th-01', metric: 'status', time: 1_700_000_011, value: 'ok' },
      {
        deviceId: 'gw-1',
        metric: 'temp',
        time: 1_700_000_020,
        value: 21.7,
        backfilled: true,
        clock: 'unsynced',
      },
    ];
    const pack = compressPack(readings, 'gw-1');
    expect(pack).toEqual([
      { bt: 1_700_000_000, n: 'temp', u: 'Cel', v: 21.5 },
      { t: 10, n: 'temp', u: 'Cel', v: 21.6 },
      { bn: 'th-01/', t: 10, n: 'door', vb: true },
      { t: 11, n: 'status', vs: 'ok' },
      { bn: '', t: 20, n: 'temp', v: 21.7, bf: true, cq: 'unsynced' },
    ]);
    expect(toReadings(resolveSenml(parseSenmlPack(pack), { now: NOW }), 'gw-1')).toEqual(readings);
  });

  it('round-trips a realistic outbox through JSON', () => {
    const readings = realisticReadings(500);
    const pack = compressPack(readings, 'gw-hall-1');
    const parsed = parseSenmlPack(JSON.parse(JSON.stringify(pack)));
    expect(toReadings(resolveSenml(parsed, { now: NOW }), 'gw-hall-1')).toEqual(readings);
  });

  it.each([
    ['a relative time', { time: 1000 }, 'senml_time'],
    ['a NaN time', { time: Number.NaN }, 'senml_time'],
    ['a NaN value', { value: Number.NaN }, 'senml_value'],
    [
      'an over-long string value',
      { value: 'x'.repeat(MAX_STRING_VALUE_LENGTH + 1) },
      'senml_value',
    ],
    ['an empty unit', { unit: '' }, 'senml_value'],
    ['a bad device id', { deviceId: 'Bad' }, 'senml_name'],
    ['a bad metric', { metric: 'a b' }, 'senml_name'],
    ['an own metric starting with "_" (RFC 8428 §4.5.1)', { metric: '_x' }, 'senml_name'],
  ])('refuses %s', (_what, change, code) => {
    const reading: Reading = {
      ...base,
      deviceId: 'gw-1',
      metric: 'temp',
      time: 1_700_000_000,
      value: 1,
      ...change,
    };
    const err = protocolError(() => compressPack([reading], 'gw-1'));
    expect(err.code).toBe(code);
    expect(err.details).toMatchObject({ index: 0 });
  });

  it("refuses a child's metric starting with '_': one metric-name rule for every device", () => {
    const reading: Reading = {
      ...base,
      deviceId: 'th-01',
      metric: '_raw',
      time: 1_700_000_000,
      value: 1,
    };
    expect(() => compressPack([reading], 'gw-1')).toThrow(/metric name/);
  });

  it('refuses no readings and too many readings', () => {
    expect(protocolError(() => compressPack([], 'gw-1')).code).toBe('senml_invalid');
    const many = realisticReadings(5001);
    expect(protocolError(() => compressPack(many, 'gw-hall-1')).code).toBe('too_many_records');
  });
});

describe('properties', () => {
  const deviceId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/);
  const ownMetric = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
  const anyMetric = ownMetric;
  const time = fc.oneof(
    fc.integer({ min: SENML_RELATIVE_TIME_LIMIT, max: 2 ** 33 }),
    fc.double({ min: SENML_RELATIVE_TIME_LIMIT, max: 2 ** 40, noNaN: true }),
    fc.integer({ min: 0, max: 86_400_000 }).map((ms) => 1_767_225_600 + ms / 1000),
  );
  const value = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (v === 0 ? 0 : v)),
    fc.integer(),
    fc.boolean(),
    fc.string({ maxLength: 40, unit: 'grapheme' }).filter((s) => !s.includes('\0')),
  );
  const unit = fc.constantFrom('Cel', '%RH', 'V', 'A', '/', 'm/s', 'Pa');
  const clock = fc.constantFrom('synced' as const, 'unsynced' as const, undefined);

  const scenario = fc
    .tuple(deviceId, fc.uniqueArray(deviceId, { maxLength: 4 }))
    .chain(([publisherId, children]) => {
      const others = children.filter((child) => child !== publisherId);
      const reading = fc
        .tuple(
          fc.constantFrom(publisherId, ...others),
          ownMetric,
          anyMetric,
          time,
          value,
          fc.option(unit, { nil: undefined }),
          fc.boolean(),
          clock,
        )
        .map(([id, own, any, t, v, u, backfilled, cq]): Reading => {
          const r: Reading = {
            deviceId: id,
            metric: id === publisherId ? own : any,
            time: t,
            value: v,
            backfilled,
            clock: cq,
          };
          if (u !== undefined) r.unit = u;
          return r;
        });
      return fc.tuple(fc.constant(publisherId), fc.array(reading, { minLength: 1, maxLength: 40 }));
    });

  it('compressPack → JSON → parse → resolveSenml → toReadings gives the readings back', () => {
    fc.assert(
      fc.property(
        scenario,
        fc.integer({ min: 0, max: 2 ** 31 }),
        ([publisherId, readings], now) => {
          const pack = compressPack(readings, publisherId);
          const wire = JSON.parse(JSON.stringify(pack)) as unknown;
          const back = toReadings(resolveSenml(parseSenmlPack(wire), { now }), publisherId);
          expect(back).toEqual(readings);
          expect(pack.length).toBe(readings.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  const anyField = fc.oneof(
    fc.jsonValue(),
    fc.double(),
    fc.string({ maxLength: 8 }),
    fc.constantFrom('', 'a', 'a/b', 'th-01/', '-', 'urn:x', 1e308, -1e308, 2 ** 28, -(2 ** 28)),
  );
  const senmlKey = fc.constantFrom(
    'bn',
    'bt',
    'bu',
    'bv',
    'bs',
    'bver',
    'n',
    'u',
    'v',
    'vs',
    'vb',
    'vd',
    's',
    't',
    'ut',
    'bf',
    'cq',
  );
  const recordish = fc.oneof(
    fc.dictionary(fc.oneof(senmlKey, fc.string({ maxLength: 3 })), anyField, { maxKeys: 6 }),
    fc.record(
      {
        bn: fc.constantFrom('', 'gw/', 'th-01/', 'A:'),
        bt: fc.oneof(fc.double(), fc.integer()),
        bv: fc.double(),
        bs: fc.double(),
        bver: fc.integer({ min: -1, max: 12 }),
        n: fc.stringMatching(/^[A-Za-z0-9_.:/-]{0,6}$/),
        t: fc.oneof(fc.double(), fc.integer()),
        v: fc.double(),
        vs: fc.string({ maxLength: 4 }),
        vb: fc.boolean(),
        vd: fc.string({ maxLength: 4 }),
        s: fc.double(),
        bf: fc.boolean(),
        cq: fc.constantFrom('synced', 'unsynced', 'x'),
      },
      { requiredKeys: [] },
    ),
    fc.jsonValue(),
  );
  const packish = fc.oneof(fc.array(recordish, { maxLength: 8 }), fc.jsonValue());

  it(
    'resolveReadings gives back what toReadings(resolveSenml(…)) gives, readings or error',
    () => {
      const sometimes = <T>(arb: fc.Arbitrary<T>, weight = 1) =>
        fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight, arbitrary: arb });
      const name = fc.oneof(
        ownMetric,
        fc.constantFrom('', 'temp', 'th-01/temp', 'gw-1/temp', 'a/b', 'x:y', '_x', 'th-01/', '/t'),
        fc.tuple(deviceId, ownMetric).map(([id, metric]) => `${id}/${metric}`),
      );
      const base = fc.oneof(
        fc.constantFrom('', 'gw-1/', 'th-01/', 'A:', 'th-01/x', 'TH/', 'a/b/', '-x/'),
        deviceId.map((id) => `${id}/`),
      );
      const num = fc.oneof(
        { weight: 3, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
        { weight: 2, arbitrary: fc.integer({ min: -100, max: 100 }) },
        // Sums that overflow to ±Infinity, and the relative/absolute time boundary.
        {
          weight: 2,
          arbitrary: fc.constantFrom(1e308, -1e308, SENML_RELATIVE_TIME_LIMIT, 1_767_225_600.5),
        },
      );
      /** Mostly one of v, vs, vb; sometimes none, vd, s, or two at once. */
      const valueFields = fc.oneof(
        { weight: 6, arbitrary: num.map((v) => ({ v })) },
        { weight: 2, arbitrary: fc.string({ maxLength: 3 }).map((vs) => ({ vs })) },
        { weight: 2, arbitrary: fc.boolean().map((vb) => ({ vb })) },
        { weight: 2, arbitrary: fc.constant({}) },
        { weight: 1, arbitrary: fc.constantFrom({ vd: 'AQ' }, { s: 1 }, { v: 1, vs: 'x' }) },
        { weight: 1, arbitrary: fc.constantFrom({ vb: true, vs: 'x' }, { v: 2, vb: false }) },
      );
      const record = fc
        .record({
          bn: sometimes(base, 2),
          bt: sometimes(num, 2),
          bu: sometimes(fc.constantFrom('Cel', 'V')),
          bv: sometimes(num),
          bs: sometimes(num),
          bver: sometimes(fc.integer({ min: 9, max: 11 })),
          n: fc.oneof(
            { weight: 1, arbitrary: fc.constant(undefined) },
            { weight: 6, arbitrary: name },
          ),
          u: sometimes(fc.constantFrom('Cel', '%RH'), 2),
          t: sometimes(num, 2),
          ut: sometimes(fc.constantFrom(0, 5)),
          bf: sometimes(fc.boolean(), 2),
          cq: sometimes(fc.constantFrom('synced' as const, 'unsynced' as const), 2),
          values: valueFields,
        })
        .map(({ values, ...fields }) => {
          const out: SenmlRecord = {};
          for (const [k, v] of Object.entries({ ...fields, ...values })) {
            if (v !== undefined) (out as Record<string, unknown>)[k] = v;
          }
          return out;
        });
      const pack = fc.oneof(
        fc.array(record, { minLength: 1, maxLength: 6 }),
        scenario.map(([publisherId, readings]) => compressPack(readings, publisherId)),
      );
      const publisher = fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom('gw-1', 'th-01') },
        { weight: 1, arbitrary: deviceId },
        { weight: 1, arbitrary: fc.constantFrom('GW', '') },
      );
      const outcome = (fn: () => Reading[]) => {
        try {
          return { readings: fn() };
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
          const { code, message, details } = err as ProtocolError;
          return { error: { code, message, details } };
        }
      };
      let readable = 0;
      fc.assert(
        fc.property(
          pack,
          publisher,
          fc.integer({ min: 0, max: 2 ** 31 }),
          (input, publisherId, now) => {
            const expected = outcome(() => toReadings(resolveSenml(input, { now }), publisherId));
            expect(outcome(() => resolveReadings(input, { now }, publisherId))).toStrictEqual(
              expected,
            );
            if (expected.readings) readable++;
          },
        ),
        { numRuns: 5_000 },
      );
      // Both outcomes occur often enough to mean something.
      expect(readable).toBeGreaterThan(500);
    },
    PROPERTY_TIMEOUT_MS,
  );

  it.each<[string, SenmlRecord[]]>([
    ['a time that overflows', [{ bt: 1e308, n: 'a', t: 1e308, v: 1 }]],
    ['a value that overflows with bv', [{ bv: 1e308, n: 'a', v: 1e308 }]],
    ['bs alone', [{ bs: 1, n: 'a' }]],
    ['no value', [{ n: 'a' }]],
    ['bv alone', [{ bv: 2, n: 'a', bf: false }]],
    ['a child named in n', [{ n: 'th-01/temp', v: 1 }]],
    [
      'a base name of a child',
      [
        { bn: 'th-01/', n: 'temp', vs: 'x' },
        { n: 'hum', vb: true },
      ],
    ],
    [
      'a base name back to the publisher',
      [
        { bn: 'th-01/', n: 'a', v: 1 },
        { bn: '', n: 'b', v: 2 },
      ],
    ],
    [
      'two versions',
      [
        { bver: 10, n: 'a', v: 1 },
        { bver: 9, n: 'b', v: 2 },
      ],
    ],
  ])('resolveReadings agrees on %s', (_what, pack) => {
    const outcome = (fn: () => Reading[]) => {
      try {
        return { readings: fn() };
      } catch (err) {
        const { code, message, details } = err as ProtocolError;
        return { error: { code, message, details } };
      }
    };
    expect(outcome(() => resolveReadings(pack, { now: NOW }, 'gw-1'))).toStrictEqual(
      outcome(() => toReadings(resolveSenml(pack, { now: NOW }), 'gw-1')),
    );
  });

  it('parse → resolve → toReadings throws nothing but ProtocolError on arbitrary input', () => {
    fc.assert(
      fc.property(packish, deviceId, (input, publisherId) => {
        try {
          toReadings(resolveSenml(parseSenmlPack(input), { now: NOW }), publisherId);
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
          expect(err).toBeInstanceOf(AppError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
