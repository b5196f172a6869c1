import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { anyPack, anyValue, validPack } from './fixtures/senml-inputs.js';
import { MAX_RECORDS_PER_BATCH } from './limits.js';
import { senmlParseError } from './senml.js';
import {
  parseTelemetryBatch,
  rejectionReasonOf,
  TELEMETRY_REJECTION_REASONS,
  telemetryBatchSchema,
  tryParseTelemetryBatch,
} from './telemetry.js';

/** Property runs take seconds on a busy machine. */
const PROPERTY_TIMEOUT_MS = 60_000;

const batch = {
  v: 1,
  boot: '3f9c0a1e',
  seq: [1200, 1201],
  records: [
    { bt: 1_700_000_000, n: 'temp', u: 'Cel', v: 21.5 },
    { bn: 'th-01/', n: 'temp', t: 10, v: 20.1, bf: true, cq: 'synced' },
  ],
};

function rejection(input: unknown): ProtocolError {
  try {
    parseTelemetryBatch(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('telemetryBatchSchema (PROTOCOL.md §5)', () => {
  it('accepts the PROTOCOL.md example shape', () => {
    expect(parseTelemetryBatch(batch)).toEqual(batch);
  });

  it('drops unknown envelope fields', () => {
    expect(parseTelemetryBatch({ ...batch, note: 'x' })).toEqual(batch);
  });

  it.each(['abcdef01', '0123456789abcdef0123456789abcdef', 'Zm9vYmFyLWJvb3Q_'])(
    'accepts boot %j',
    (boot) => {
      expect(telemetryBatchSchema.safeParse({ ...batch, boot }).success).toBe(true);
    },
  );

  it.each([
    ['a short boot', { boot: 'abc1234' }, 'boot'],
    ['a long boot', { boot: 'a'.repeat(33) }, 'boot'],
    ['a boot with "="', { boot: 'abcdefgh=' }, 'boot'],
    ['v 2', { v: 2 }, 'v'],
    ['from > to', { seq: [5, 4] }, 'seq'],
    ['a negative seq', { seq: [-1, 4] }, 'seq.0'],
    ['a fractional seq', { seq: [1, 1.5] }, 'seq.1'],
    ['an unsafe integer seq', { seq: [0, 2 ** 53] }, 'seq.1'],
    ['a seq of three', { seq: [1, 2, 3] }, 'seq'],
    ['a seq span over the record limit', { seq: [0, MAX_RECORDS_PER_BATCH] }, 'seq'],
    ['records that are not a pack', { records: {} }, 'records'],
  ])('refuses %s with payload_invalid at %s', (_what, change, path) => {
    const err = rejection({ ...batch, ...change });
    expect(err.code).toBe('payload_invalid');
    expect(err.details).toMatchObject({
      issues: expect.arrayContaining([{ path, message: expect.any(String) }]),
    });
    expect(err.details).not.toHaveProperty('index');
  });

  it('accepts a seq span of exactly the record limit', () => {
    const seq = [10, 10 + MAX_RECORDS_PER_BATCH - 1];
    expect(telemetryBatchSchema.safeParse({ ...batch, seq }).success).toBe(true);
  });

  it('reports a bad record with its index', () => {
    const err = rejection({ ...batch, records: [batch.records[0], { n: 'x', v: null }] });
    expect(err.code).toBe('senml_invalid');
    expect(err.details).toMatchObject({ index: 1, issues: [{ path: 'records.1.v' }] });
  });

  it('reports a must-understand field with its own code', () => {
    const err = rejection({ ...batch, records: [{ n: 'x', v: 1, new_: 1 }] });
    expect(err.code).toBe('senml_must_understand');
    expect(err.details).toMatchObject({ index: 0 });
  });

  it('refuses too many records before looking at them', () => {
    const records = Array.from({ length: MAX_RECORDS_PER_BATCH + 1 }, () => 'not a record');
    const err = rejection({ ...batch, records });
    expect(err.code).toBe('too_many_records');
    expect(err.kind).toBe('too_large');
    expect(err.details).toMatchObject({ issues: [{ path: 'records' }] });
  });

  it('refuses a non-object', () => {
    expect(rejection([]).code).toBe('payload_invalid');
    expect(rejection('x').code).toBe('payload_invalid');
  });
});

describe('the zod-free batch parser', () => {
  const seqNumber = fc.oneof(
    fc.integer({ min: 0, max: 20_000 }),
    fc.constantFrom(-0, -1, 1.5, 2 ** 53 - 1, 2 ** 53, Number.NaN, '1'),
  );
  /** Mostly valid ranges; spans around the limit, one over it included. */
  const seqRange = fc
    .tuple(
      fc.oneof(
        fc.integer({ min: 0, max: 20_000 }),
        fc.constantFrom(-0, 2 ** 53 - 5_001, 2 ** 53 - 1, 2 ** 53),
      ),
      fc.constantFrom(0, 1, 99, -1, MAX_RECORDS_PER_BATCH - 1, MAX_RECORDS_PER_BATCH),
    )
    .map(([from, span]) => [from, from + span]);
  const badSeq = fc.oneof(
    fc.tuple(seqNumber, seqNumber),
    fc.array(seqNumber, { maxLength: 3 }),
    seqRange.map((range) => [...range, 0]),
    anyValue,
  );
  const often = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<unknown>) =>
    fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: bad });
  const envelope = fc.record(
    {
      v: often(fc.constant(1), anyValue),
      boot: often(
        fc.stringMatching(/^[A-Za-z0-9_-]{8,32}$/),
        fc.oneof(
          fc.stringMatching(/^[A-Za-z0-9_-]{6,34}$/),
          fc.constantFrom('abc def1', 'abcdefg', 'a'.repeat(33), undefined),
        ),
      ),
      seq: often(seqRange, badSeq),
      records: often(validPack, anyPack),
      note: anyValue,
    },
    { requiredKeys: ['v', 'boot', 'seq', 'records'] },
  );
  const anyInput = fc.oneof(
    { weight: 10, arbitrary: envelope },
    // An array is no object to zod, whatever members it carries.
    { weight: 1, arbitrary: envelope.map((e) => Object.assign([], e)) },
    { weight: 1, arbitrary: anyValue },
  );

  it(
    'accepts exactly what telemetryBatchSchema accepts, with the same output',
    () => {
      fc.assert(
        fc.property(anyInput, (input) => {
          const zod = telemetryBatchSchema.safeParse(input);
          const fast = tryParseTelemetryBatch(input);
          if (zod.success) {
            expect(fast).toStrictEqual(zod.data);
            expect(Object.keys(fast!)).toEqual(Object.keys(zod.data));
            expect(parseTelemetryBatch(input)).toStrictEqual(zod.data);
          } else {
            expect(fast).toBeUndefined();
            const expected = senmlParseError(zod.error, ['records']);
            const err = rejection(input);
            expect([err.code, err.message, err.details]).toEqual([
              expected.code,
              expected.message,
              expected.details,
            ]);
          }
        }),
        { numRuns: 5_000 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe('telemetry rejection reasons', () => {
  it('lists the PROTOCOL.md §9 reasons', () => {
    expect(TELEMETRY_REJECTION_REASONS).toEqual([
      'bad_signature',
      'schema',
      'too_large',
      'too_many_records',
      'not_child',
      'unknown_device',
      'revoked',
      'policy',
    ]);
  });

  it('maps protocol errors to a reason', () => {
    expect(rejectionReasonOf(rejection({ ...batch, v: 2 }))).toBe('schema');
    expect(rejectionReasonOf(new ProtocolError('senml_name', 'x'))).toBe('schema');
    expect(rejectionReasonOf(new ProtocolError('too_many_records', 'x'))).toBe('too_many_records');
  });
});
