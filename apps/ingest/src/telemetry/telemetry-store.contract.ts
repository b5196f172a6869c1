import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AggregateFunction,
  type SeriesRow,
  StoreRefused,
  type TelemetryPoint,
  type TelemetryStore,
} from './telemetry-store.js';

/**
 * Reads what a store wrote through the server's own API, for a store whose server cannot
 * answer our queries (VictoriaMetrics serves the InfluxDB write API but not InfluxQL).
 */
export interface ContractVerify {
  /** Raw points of one device and metric in `[fromMs, toMs)`, sorted by time. */
  points(device: string, metric: string, fromMs: number, toMs: number): Promise<SeriesRow[]>;
  /**
   * What this read path shows for a written value, `undefined` when it shows no point at
   * all; identity by default (VictoriaMetrics, for one, keeps no string values).
   */
  shows?(value: TelemetryPoint['value']): SeriesRow['value'] | undefined;
}

export interface TelemetryStoreContractOptions {
  /**
   * Verify writes with these hooks instead of `store.query`. Only the write half of the
   * contract runs then: the query, aggregate and latest tests are skipped.
   */
  verify?: ContractVerify;
  teardown?: () => Promise<void>;
}

/** A round epoch time: a multiple of every window used below. */
const T0 = 1_700_000_000_000;
const WIDE = { fromMs: T0 - 86_400_000, toMs: T0 + 86_400_000 };

/**
 * The contract every TelemetryStore implementation passes. `make` returns a store on an
 * empty database, or on a shared one: every test uses device ids of its own.
 */
export function telemetryStoreContract(
  name: string,
  make: () => Promise<TelemetryStore>,
  options: TelemetryStoreContractOptions = {},
): void {
  const { verify } = options;

  describe(`TelemetryStore contract: ${name}`, () => {
    let store: TelemetryStore;
    let run = 0;
    /** A device id unique to this test, so stores on a shared server do not see each other. */
    const dev = (base: string): string => `${base}-c${run}`;
    const pt = (
      device: string,
      metric: string,
      timeMs: number,
      value: TelemetryPoint['value'],
      extra: Partial<TelemetryPoint> = {},
    ): TelemetryPoint => ({ device, metric, timeMs, value, tags: {}, ...extra });

    /** Raw points as the store (or the verify hook) reads them back. */
    const readBack = async (device: string, metric: string): Promise<SeriesRow[]> =>
      verify
        ? verify.points(device, metric, WIDE.fromMs, WIDE.toMs)
        : store.query({ device, metric, ...WIDE, limit: 10_000 });
    /** The rows expected for written points, as this read path shows them. */
    const expected = (points: readonly TelemetryPoint[]): SeriesRow[] =>
      [...points]
        .sort((a, b) => a.timeMs - b.timeMs)
        .flatMap((p) => {
          const value = verify?.shows ? verify.shows(p.value) : p.value;
          return value === undefined ? [] : [{ timeMs: p.timeMs, value }];
        });

    beforeEach(async () => {
      run++;
      store = await make();
    });
    afterEach(async () => {
      await store?.close();
    });
    afterAll(async () => {
      await options.teardown?.();
    });

    describe('writes', () => {
      it('answers ping and writes an empty batch as a no-op', async () => {
        await expect(store.ping()).resolves.toBeUndefined();
        await expect(store.write([])).resolves.toBeUndefined();
      });

      it('stores numbers (ints and floats alike), strings and booleans of one metric', async () => {
        const d = dev('types');
        const points = [
          pt(d, 'mixed', T0, 42),
          pt(d, 'mixed', T0 + 1_000, 21.5),
          pt(d, 'mixed', T0 + 2_000, -3.25),
          pt(d, 'mixed', T0 + 3_000, 0),
          pt(d, 'mixed', T0 + 4_000, 'open'),
          pt(d, 'mixed', T0 + 5_000, true),
          pt(d, 'mixed', T0 + 6_000, false),
          // Not much bigger: VictoriaMetrics keeps ~12 significant digits per block of samples.
          pt(d, 'mixed', T0 + 7_000, 1e9),
          pt(d, 'mixed', T0 + 8_000, 7),
        ];
        // One value type per batch, then all of them together: no field type conflict either way.
        for (const p of points) await store.write([p]);
        await store.write(points);
        expect(await readBack(d, 'mixed')).toEqual(expected(points));
      });

      it('keeps one point when the same point is written again', async () => {
        const d = dev('idem');
        const a = pt(d, 'temp', T0, 20.5, { unit: 'Cel', tags: { site: 'north' } });
        const b = pt(d, 'temp', T0 + 10, 21, { unit: 'Cel', tags: { site: 'north' } });
        await store.write([a, b]);
        await store.write([b, a, { ...a }]);
        expect(await readBack(d, 'temp')).toEqual(expected([a, b]));
      });

      it('keeps millisecond precision', async () => {
        const d = dev('ms');
        const points = [0, 1, 2, 999, 1_001].map((dt, i) => pt(d, 'tick', T0 + 123 + dt, i));
        await store.write(points);
        expect(await readBack(d, 'tick')).toEqual(expected(points));
      });

      it('does not mix in points of other devices or metrics', async () => {
        const [d1, d2, d1x] = [dev('d1'), dev('d2'), `${dev('d1')}-x`];
        const mine = [pt(d1, 'temp', T0, 1), pt(d1, 'temp', T0 + 1_000, 2)];
        await store.write([
          ...mine,
          pt(d2, 'temp', T0 + 500, 10),
          pt(d1x, 'temp', T0 + 600, 11),
          pt(d1, 'temp2', T0 + 700, 12),
          pt(d1, 'hum', T0 + 800, 13),
        ]);
        expect(await readBack(d1, 'temp')).toEqual(expected(mine));
        expect(await readBack(d2, 'temp')).toEqual(expected([pt(d2, 'temp', T0 + 500, 10)]));
      });

      it('stores hostile device ids, metric names, tags and strings exactly', async () => {
        const device = dev(`dev "q", x=y it's a\\b`);
        const metric = `m 1,2=3 "x" it's`;
        const points = [
          pt(device, metric, T0, 1.5, {
            unit: `m/s "x", y=z a\\b`,
            tags: { site: `north, =east "x" a\\b it's`, 'k.y-1_z': 'v w' },
          }),
          pt(device, metric, T0 + 1, `a "b" \\ c, d=e 'f'\nline two`),
          pt(device, metric, T0 + 2, true, { tags: { site: `'; DROP "x"` } }),
        ];
        await store.write(points);
        expect(await readBack(device, metric)).toEqual(expected(points));
      });

      it('refuses a batch holding a non-finite number or a fractional time, writing none of it', async () => {
        const d = dev('bad');
        const good = pt(d, 'temp', T0, 1);
        for (const bad of [
          pt(d, 'temp', T0 + 1, Number.NaN),
          pt(d, 'temp', T0 + 1, Number.POSITIVE_INFINITY),
          pt(d, 'temp', T0 + 0.5, 2),
        ]) {
          await expect(store.write([good, bad])).rejects.toBeInstanceOf(StoreRefused);
        }
        expect(await readBack(d, 'temp')).toEqual([]);
      });
    });

    describe.skipIf(verify !== undefined)('queries', () => {
      it('answers a raw range `[from, to)` sorted by time, with a limit', async () => {
        const d = dev('raw');
        const points = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4].map((i) => pt(d, 'temp', T0 + i * 1_000, i));
        await store.write(points);
        const range = { device: d, metric: 'temp', fromMs: T0 + 2_000, toMs: T0 + 8_000 };
        expect(await store.query({ ...range, limit: 100 })).toEqual(
          [2, 3, 4, 5, 6, 7].map((i) => ({ timeMs: T0 + i * 1_000, value: i })),
        );
        expect(await store.query({ ...range, limit: 3 })).toEqual(
          [2, 3, 4].map((i) => ({ timeMs: T0 + i * 1_000, value: i })),
        );
        expect(await store.query({ ...range, limit: 0 })).toEqual([]);
        expect(await store.query({ ...range, device: dev('nobody'), limit: 10 })).toEqual([]);
      });

      describe('windows', () => {
        // Windows of 10 s from T0: [2, 3] (1 is before `from`), [10], nothing, [4, 8]; 100 is at `to`.
        const points = (d: string) => [
          pt(d, 'temp', T0 + 1_000, 1),
          pt(d, 'temp', T0 + 2_000, 2),
          pt(d, 'temp', T0 + 3_000, 3),
          pt(d, 'temp', T0 + 15_000, 10),
          pt(d, 'temp', T0 + 39_999, 8),
          pt(d, 'temp', T0 + 30_000, 4),
          pt(d, 'temp', T0 + 40_000, 100),
        ];
        const cases: [AggregateFunction, number[]][] = [
          ['mean', [2.5, 10, 6]],
          ['min', [2, 10, 4]],
          ['max', [3, 10, 8]],
          ['sum', [5, 10, 12]],
          ['count', [2, 1, 2]],
          ['first', [2, 10, 4]],
          ['last', [3, 10, 8]],
        ];
        const starts = [T0, T0 + 10_000, T0 + 30_000];

        it('aggregates mean/min/max/sum/count/first/last per window, aligned to the epoch', async () => {
          const d = dev('win');
          await store.write(points(d));
          for (const [fn, values] of cases) {
            const rows = await store.query({
              device: d,
              metric: 'temp',
              fromMs: T0 + 1_500,
              toMs: T0 + 40_000,
              everyMs: 10_000,
              fn,
              limit: 100,
            });
            expect(rows, fn).toEqual(values.map((value, i) => ({ timeMs: starts[i], value })));
          }
        });

        it('defaults to mean, and limits the number of windows', async () => {
          const d = dev('win-limit');
          await store.write(points(d));
          const q = { device: d, metric: 'temp', fromMs: T0 + 1_500, toMs: T0 + 40_000 };
          expect(await store.query({ ...q, everyMs: 10_000, limit: 2 })).toEqual([
            { timeMs: T0, value: 2.5 },
            { timeMs: T0 + 10_000, value: 10 },
          ]);
          expect(await store.query({ ...q, everyMs: 60_000, fn: 'sum', limit: 10 })).toEqual([
            { timeMs: T0 - 20_000, value: 27 },
          ]);
        });
      });

      it('counts, firsts and lasts strings and booleans; numeric aggregates skip them', async () => {
        const d = dev('text');
        await store.write([
          pt(d, 'door', T0 + 1_000, 'a'),
          pt(d, 'door', T0 + 2_000, 'b'),
          pt(d, 'door', T0 + 12_000, 'c'),
          pt(d, 'armed', T0 + 1_000, true),
          pt(d, 'armed', T0 + 2_000, false),
        ]);
        const q = (metric: string, fn: AggregateFunction) =>
          store.query({
            device: d,
            metric,
            fromMs: T0,
            toMs: T0 + 20_000,
            everyMs: 10_000,
            fn,
            limit: 10,
          });
        expect(await q('door', 'count')).toEqual([
          { timeMs: T0, value: 2 },
          { timeMs: T0 + 10_000, value: 1 },
        ]);
        expect(await q('door', 'first')).toEqual([
          { timeMs: T0, value: 'a' },
          { timeMs: T0 + 10_000, value: 'c' },
        ]);
        expect(await q('door', 'last')).toEqual([
          { timeMs: T0, value: 'b' },
          { timeMs: T0 + 10_000, value: 'c' },
        ]);
        expect(await q('armed', 'first')).toEqual([{ timeMs: T0, value: true }]);
        expect(await q('armed', 'last')).toEqual([{ timeMs: T0, value: false }]);
        expect(await q('door', 'mean')).toEqual([]);
        expect(await q('armed', 'max')).toEqual([]);
      });

      it('answers the latest value of every metric with its unit, sorted by metric', async () => {
        const [d, other] = [dev('latest'), dev('latest-other')];
        await store.write([
          pt(d, 'temp', T0, 20, { unit: 'Cel' }),
          pt(d, 'temp', T0 + 5_000, 22, { unit: 'Cel' }),
          pt(d, 'temp', T0 + 2_000, 21, { unit: 'Cel' }),
          pt(d, 'hum', T0 + 3_000, 40, { unit: '%RH' }),
          pt(d, 'door', T0 + 1_000, 'open'),
          pt(d, 'door', T0 + 7_000, 'closed'),
          pt(d, 'armed', T0 + 4_000, true),
          pt(d, 'speed', T0 + 1, 3.5, { unit: 'km/h' }),
          pt(d, 'speed', T0 + 2, 1, { unit: 'm/s' }),
          pt(other, 'temp', T0 + 100_000, 99, { unit: 'Cel' }),
          pt(other, 'pressure', T0, 1013, { unit: 'hPa' }),
        ]);
        expect(await store.latest(d)).toEqual([
          { metric: 'armed', timeMs: T0 + 4_000, value: true },
          { metric: 'door', timeMs: T0 + 7_000, value: 'closed' },
          { metric: 'hum', timeMs: T0 + 3_000, value: 40, unit: '%RH' },
          { metric: 'speed', timeMs: T0 + 2, value: 1, unit: 'm/s' },
          { metric: 'temp', timeMs: T0 + 5_000, value: 22, unit: 'Cel' },
        ]);
        expect(await store.latest(dev('nobody'))).toEqual([]);
      });

      it('replaces the value when a point is written again with another value', async () => {
        const d = dev('replace');
        await store.write([pt(d, 'temp', T0, 1, { unit: 'Cel' })]);
        await store.write([pt(d, 'temp', T0, 2, { unit: 'Cel' })]);
        expect(await store.query({ device: d, metric: 'temp', ...WIDE, limit: 10 })).toEqual([
          { timeMs: T0, value: 2 },
        ]);
        expect(await store.latest(d)).toEqual([
          { metric: 'temp', timeMs: T0, value: 2, unit: 'Cel' },
        ]);
      });

      it('reads hostile names back exactly through query and latest', async () => {
        const device = dev(`dev "q", x=y it's a\\b`);
        const metric = `m 1,2=3 "x" it's`;
        const unit = `m/s "x", y=z a\\b 'u'`;
        await store.write([
          pt(device, metric, T0, 1.5, { unit, tags: { site: `'; DROP "x"` } }),
          pt(device, `${metric}2`, T0, 'a "b" \\ c'),
        ]);
        expect(await store.query({ device, metric, ...WIDE, limit: 10 })).toEqual([
          { timeMs: T0, value: 1.5 },
        ]);
        expect(await store.latest(device)).toEqual([
          { metric, timeMs: T0, value: 1.5, unit },
          { metric: `${metric}2`, timeMs: T0, value: 'a "b" \\ c' },
        ]);
        // A quote in the device id must not widen the match.
        expect(await store.latest(`x' OR device =~ /.*/ OR device = 'x`)).toEqual([]);
      });
    });
  });
}
