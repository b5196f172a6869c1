import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { SourceReading } from '../sources/source.js';
import {
  AggregateStep,
  aggregateStepSchema,
  DeadbandStep,
  deadbandStepSchema,
  Pipeline,
  pipelineSchema,
  RangeStep,
  RateLimitStep,
  rangeStepSchema,
  rateLimitStepSchema,
  UnitsStep,
  unitsStepSchema,
} from './filters.js';
import { unitConversion } from './units.js';

const T0 = Date.UTC(2026, 0, 1); // ms, aligned to every window length used here
const r = (
  metric: string,
  value: SourceReading['value'],
  extra: Partial<SourceReading> = {},
): SourceReading => ({
  device: 'd1',
  metric,
  time: T0 / 1000,
  value,
  ...extra,
});

/** Feeds `[nowMs, value]` pairs one at a time; returns the values that passed. */
function feed(
  step: { process(rs: SourceReading[], now: number): SourceReading[] },
  inputs: [number, SourceReading['value']][],
  metric = 't',
) {
  return inputs.flatMap(([at, value]) =>
    step.process([r(metric, value)], T0 + at).map((x) => x.value),
  );
}

describe('range', () => {
  it.each([
    [
      { metric: 't', min: -40, max: 125 },
      [-41, -40, 20, 125, 126],
      [-40, 20, 125],
      { dropped: 2, clamped: 0 },
    ],
    [
      { metric: 't', min: 0, max: 10, action: 'clamp' },
      [-5, 5, 15],
      [0, 5, 10],
      { dropped: 0, clamped: 2 },
    ],
    [{ metric: 't', max: 10 }, [-1e9, 11], [-1e9], { dropped: 1, clamped: 0 }],
    [{ metric: 'other', min: 0 }, [-5], [-5], { dropped: 0, clamped: 0 }],
    [{ metric: 't', min: 0 }, ['low', true], ['low', true], { dropped: 0, clamped: 0 }],
  ])('%j: %j → %j', (config, input, output, counters) => {
    const step = new RangeStep(rangeStepSchema.parse(config));
    expect(
      feed(
        step,
        input.map((v) => [0, v]),
      ),
    ).toEqual(output);
    expect(step.counters).toEqual(counters);
  });

  it('selects by device too', () => {
    const step = new RangeStep(rangeStepSchema.parse({ metric: 't', device: 'd2', max: 0 }));
    const out = step.process([r('t', 5), r('t', 5, { device: 'd2' })], T0);
    expect(out.map((x) => x.device)).toEqual(['d1']);
  });

  it.each([[{ metric: 't' }], [{ min: 5, max: 1 }]])('refuses %j', (config) => {
    expect(rangeStepSchema.safeParse(config).success).toBe(false);
  });
});

describe('deadband', () => {
  it.each([
    [
      'drops changes within delta',
      { delta: 0.5 },
      [
        [0, 20],
        [1, 20.3],
        [2, 20.5],
        [3, 20.6],
        [4, 19.9],
      ],
      [20, 20.6, 19.9],
    ],
    [
      'delta 0 drops repeats only',
      { delta: 0 },
      [
        [0, 1],
        [1, 1],
        [2, 2],
        [3, 2],
      ],
      [1, 2],
    ],
    [
      'passes the next value once maxSilence has passed',
      { delta: 1, maxSilence: '10s' },
      [
        [0, 5],
        [5_000, 5],
        [9_999, 5],
        [10_000, 5],
        [15_000, 5],
        [20_000, 5],
      ],
      [5, 5, 5],
    ],
    [
      'strings and booleans pass when they change',
      { delta: 1 },
      [
        [0, 'idle'],
        [1, 'idle'],
        [2, 'run'],
        [3, true],
        [4, true],
      ],
      ['idle', 'run', true],
    ],
    [
      'the clock going back lets the next value through',
      { delta: 1 },
      [
        [10_000, 5],
        [11_000, 5],
        [1_000, 5],
        [2_000, 5],
      ],
      [5, 5],
    ],
  ] as const)('%s', (_name, config, inputs, output) => {
    const step = new DeadbandStep(deadbandStepSchema.parse({ metric: 't', ...config }));
    expect(feed(step, inputs as unknown as [number, number][])).toEqual(output);
    expect(step.counters.dropped).toBe(inputs.length - output.length);
  });

  it('keeps state per device and metric', () => {
    const step = new DeadbandStep(deadbandStepSchema.parse({ delta: 1 }));
    const out = step.process([r('t', 1), r('h', 1), r('t', 1, { device: 'd2' }), r('t', 1.5)], T0);
    expect(out).toHaveLength(3);
  });
});

describe('rateLimit', () => {
  it.each([
    [
      'N per interval',
      { max: 2, per: '1s' },
      [0, 100, 200, 999, 1000, 1001, 1002],
      [0, 100, 1000, 1001],
    ],
    ['one per interval', { max: 1, per: '10s' }, [0, 9_999, 10_000, 19_999], [0, 10_000]],
    [
      'a new interval when the clock goes back',
      { max: 1, per: '10s' },
      [5_000, 6_000, 1_000, 2_000],
      [5_000, 1_000],
    ],
  ] as const)('%s', (_name, config, times, passed) => {
    const step = new RateLimitStep(rateLimitStepSchema.parse({ metric: 't', ...config }));
    expect(
      feed(
        step,
        times.map((at) => [at, at]),
      ),
    ).toEqual(passed);
  });

  it('limits each (device, metric) alone', () => {
    const step = new RateLimitStep(rateLimitStepSchema.parse({ max: 1, per: '1s' }));
    const out = step.process([r('t', 1), r('t', 2), r('h', 1), r('t', 1, { device: 'd2' })], T0);
    expect(out.map((x) => `${x.device}/${x.metric}=${x.value}`)).toEqual([
      'd1/t=1',
      'd1/h=1',
      'd2/t=1',
    ]);
  });

  it('refuses a zero interval', () => {
    expect(rateLimitStepSchema.safeParse({ max: 1, per: 0 }).success).toBe(false);
  });
});

describe('aggregate', () => {
  const step = () =>
    new AggregateStep(
      aggregateStepSchema.parse({
        metric: 'vibration',
        every: '10s',
        fn: ['mean', 'min', 'max', 'count', 'last', 'sum'],
      }),
    );
  const vib = (value: number) => r('vibration', value, { unit: 'm/s2' });

  it('absorbs readings and emits one set per window at its end, stamped with its start', () => {
    const s = step();
    expect(s.process([vib(1), vib(3)], T0 + 1_000)).toEqual([]);
    expect(s.process([vib(8)], T0 + 9_000)).toEqual([]);
    expect(s.nextDueAt()).toBe(T0 + 10_000);
    expect(s.tick(T0 + 9_999)).toEqual([]);
    const out = s.tick(T0 + 10_000);
    const at = T0 / 1000;
    expect(out).toEqual([
      { device: 'd1', metric: 'vibration_mean', time: at, value: 4, unit: 'm/s2' },
      { device: 'd1', metric: 'vibration_min', time: at, value: 1, unit: 'm/s2' },
      { device: 'd1', metric: 'vibration_max', time: at, value: 8, unit: 'm/s2' },
      { device: 'd1', metric: 'vibration_count', time: at, value: 3 },
      { device: 'd1', metric: 'vibration_last', time: at, value: 8, unit: 'm/s2' },
      { device: 'd1', metric: 'vibration_sum', time: at, value: 12, unit: 'm/s2' },
    ]);
    expect(s.nextDueAt()).toBeUndefined();
  });

  it('aligns windows to multiples of `every`, and emits no empty windows', () => {
    const s = step();
    s.process([vib(1)], T0 + 25_000); // window [20 s, 30 s)
    expect(s.nextDueAt()).toBe(T0 + 30_000);
    expect(s.tick(T0 + 95_000)).toHaveLength(6); // one window, not seven
    expect(s.tick(T0 + 200_000)).toEqual([]);
  });

  it('closes a window when a reading arrives after its end (a late tick)', () => {
    const s = step();
    s.process([vib(1)], T0);
    const out = s.process([vib(5)], T0 + 12_000);
    expect(out.find((x) => x.metric === 'vibration_mean')?.value).toBe(1);
    expect(s.flush().find((x) => x.metric === 'vibration_mean')).toMatchObject({
      value: 5,
      time: T0 / 1000 + 10,
    });
  });

  it('clock going back: the open window closes at once, a new one starts at the new time', () => {
    const s = step();
    s.process([vib(2)], T0 + 5_000);
    const out = s.process([vib(7)], T0 - 3_600_000);
    expect(out.find((x) => x.metric === 'vibration_mean')).toMatchObject({
      value: 2,
      time: T0 / 1000,
    });
    expect(s.counters.closedEarly).toBe(1);
    expect(s.nextDueAt()).toBe(T0 - 3_600_000 + 10_000);
    // and a tick from before the open window closes it too
    s.process([vib(1)], T0);
    expect(s.tick(T0 - 7_200_000).length).toBeGreaterThan(0);
  });

  it('clock jumping forward: ended windows are emitted once', () => {
    const s = step();
    s.process([vib(2)], T0);
    expect(s.tick(T0 + 86_400_000)).toHaveLength(6);
    expect(s.tick(T0 + 86_400_000 * 2)).toEqual([]);
  });

  it('passes other metrics and non-numbers through; keepRaw passes raw readings too', () => {
    const s = step();
    expect(s.process([r('t', 1), vib(1), r('vibration', 'high')], T0).map((x) => x.value)).toEqual([
      1,
      'high',
    ]);
    const raw = new AggregateStep(
      aggregateStepSchema.parse({ metric: 'v', every: '1s', fn: 'max', keepRaw: true }),
    );
    expect(raw.process([r('v', 3)], T0)).toEqual([r('v', 3)]);
    expect(raw.tick(T0 + 1_000)).toMatchObject([{ metric: 'v_max', value: 3 }]);
  });

  it('keeps one window per device', () => {
    const s = step();
    s.process([vib(1), { ...vib(9), device: 'd2' }], T0);
    const out = s.tick(T0 + 10_000).filter((x) => x.metric === 'vibration_max');
    expect(out.map((x) => [x.device, x.value])).toEqual([
      ['d1', 1],
      ['d2', 9],
    ]);
  });

  it.each([
    [{ metric: 'v', every: '10ms', fn: 'max' }, 'a window under 100 ms'],
    [{ metric: 'v'.repeat(62), every: '1s', fn: 'mean' }, 'a result name over 64 characters'],
    [{ every: '1s', fn: 'mean' }, 'no metric'],
    [{ metric: 'v', every: '1s', fn: 'median' }, 'an unknown function'],
  ])('refuses %j (%s)', (config, _why) => {
    expect(aggregateStepSchema.safeParse(config).success).toBe(false);
  });
});

describe('units', () => {
  it.each([
    ['degF', 'Cel', 212, 100],
    ['degF', 'Cel', -40, -40],
    ['K', 'Cel', 273.15, 0],
    ['Cel', 'K', 0, 273.15],
    ['km/h', 'm/s', 36, 10],
    ['mph', 'm/s', 1, 0.44704],
    ['psi', 'Pa', 1, 6894.757293168361],
    ['bar', 'hPa', 1, 1000],
    ['kWh', 'J', 1, 3_600_000],
    ['%', '/', 50, 0.5],
    ['min', 's', 2, 120],
  ])('%s → %s: %d → %d', (from, to, input, output) => {
    expect(unitConversion(from, to)!(input)).toBeCloseTo(output, 9);
  });

  it('does not convert across dimensions', () => {
    expect(unitConversion('Cel', 'm')).toBeUndefined();
    expect(unitConversion('furlong', 'm')).toBeUndefined();
  });

  it('converts, sets the SenML unit, rounds, and leaves other units alone', () => {
    const step = new UnitsStep(
      unitsStepSchema.parse({ metric: 't', from: 'degF', to: 'Cel', decimals: 2 }),
    );
    const out = step.process(
      [
        r('t', 70),
        r('t', 70, { unit: 'degF' }),
        r('t', 21, { unit: 'Cel' }),
        r('t', 300, { unit: 'K' }),
        r('h', 70),
      ],
      T0,
    );
    expect(out.map((x) => [x.value, x.unit])).toEqual([
      [21.11, 'Cel'],
      [21.11, 'Cel'],
      [21, 'Cel'],
      [300, 'K'],
      [70, undefined],
    ]);
    expect(step.counters).toEqual({ converted: 2, mismatched: 1, unknown: 0 });
  });

  it('without from, converts from each reading’s own unit', () => {
    const step = new UnitsStep(unitsStepSchema.parse({ to: 'Cel' }));
    const out = step.process(
      [r('t', 32, { unit: 'degF' }), r('u', 0, { unit: 'K' }), r('x', 1), r('y', 1, { unit: 'm' })],
      T0,
    );
    expect(out.map((x) => [x.value, x.unit])).toEqual([
      [0, 'Cel'],
      [-273.15, 'Cel'],
      [1, undefined],
      [1, 'm'],
    ]);
    expect(step.counters).toEqual({ converted: 2, mismatched: 0, unknown: 2 });
  });

  it.each([
    [{ to: 'degF' }, 'a target that is not a SenML unit'],
    [{ from: 'Cel', to: 'm' }, 'units of different dimensions'],
    [{ to: 'lat' }, 'a SenML unit without a conversion'],
  ])('refuses %j (%s)', (config, _why) => {
    expect(unitsStepSchema.safeParse(config).success).toBe(false);
  });
});

describe('Pipeline', () => {
  const config = pipelineSchema.parse(
    parseYaml(`
- range: {metric: temperature, min: -40, max: 125}
- units: {metric: temperature, from: degF, to: Cel, decimals: 1}
- deadband: {metric: temperature, delta: 0.2, maxSilence: 60s}
- aggregate: {metric: vibration, every: 10s, fn: [mean, max]}
- rateLimit: {metric: [vibration_mean, vibration_max], max: 1, per: 1m}
`),
  );

  it('reads the SURFACES.md pipeline section', () => {
    expect(config.map((s) => s.kind)).toEqual([
      'range',
      'units',
      'deadband',
      'aggregate',
      'rateLimit',
    ]);
    expect(config[2]).toEqual({
      kind: 'deadband',
      config: { metric: 'temperature', delta: 0.2, maxSilence: 60_000 },
    });
  });

  it('applies steps in order; aggregates from tick go through the later steps', () => {
    const p = new Pipeline(config);
    const out = p.process(
      [
        r('temperature', 70), // 21.1 Cel
        r('temperature', 70.1), // 21.2 Cel: within the deadband
        r('temperature', 500), // out of range (checked before conversion)
        r('vibration', 2),
        r('vibration', 4),
      ],
      T0,
    );
    expect(out.map((x) => [x.metric, x.value, x.unit])).toEqual([['temperature', 21.1, 'Cel']]);
    expect(p.nextDueAt()).toBe(T0 + 10_000);
    expect(p.tick(T0 + 10_000).map((x) => [x.metric, x.value])).toEqual([
      ['vibration_mean', 3],
      ['vibration_max', 4],
    ]);
    p.process([r('vibration', 1)], T0 + 15_000);
    expect(p.tick(T0 + 20_000)).toEqual([]); // rate-limited: one per minute
    expect(p.stats().map((s) => [s.step, s.counters])).toEqual([
      ['range', { dropped: 1, clamped: 0 }],
      ['units', { converted: 2, mismatched: 0, unknown: 0 }],
      ['deadband', { dropped: 1 }],
      ['aggregate', { windows: 2, closedEarly: 0, absorbed: 3 }],
      ['rateLimit', { dropped: 2 }],
    ]);
  });

  it('flush emits open windows through the later steps', () => {
    const p = new Pipeline(
      pipelineSchema.parse([
        { aggregate: { metric: 'v', every: '1m', fn: 'mean' } },
        { units: { from: 'km/h', to: 'm/s' } },
      ]),
    );
    p.process([r('v', 36)], T0);
    expect(p.flush(T0 + 1)).toMatchObject([{ metric: 'v_mean', value: 10, unit: 'm/s' }]);
    expect(p.nextDueAt()).toBeUndefined();
  });

  it('an empty pipeline passes everything', () => {
    const p = new Pipeline(pipelineSchema.parse(undefined));
    const input = [r('a', 1)];
    expect(p.process(input, T0)).toEqual(input);
  });

  it('refuses a step with two kinds or none, listing the path', () => {
    const result = pipelineSchema.safeParse([
      { range: { min: 0 }, deadband: { delta: 1 } },
      {},
      { rateLimit: { max: 0, per: '1s' } },
    ]);
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((i) => i.path.join('.'))).toEqual(
      expect.arrayContaining(['0', '1', '2.rateLimit.max']),
    );
  });

  it('survives clock jumps both ways without losing readings’ wall-clock time', () => {
    const p = new Pipeline(
      pipelineSchema.parse([
        { deadband: { metric: 't', delta: 100, maxSilence: '5s' } },
        { aggregate: { metric: 'v', every: '10s', fn: 'count' } },
        { rateLimit: { max: 100, per: '1s' } },
      ]),
    );
    const times = [0, 1_000, -86_400_000, -86_399_000, 86_400_000, 0, 3 * 86_400_000];
    const seen: SourceReading[] = [];
    for (const [i, at] of times.entries()) {
      const stamped = r('t', i, { time: 1_767_225_600 + i });
      seen.push(...p.process([stamped, r('v', i)], T0 + at), ...p.tick(T0 + at));
    }
    seen.push(...p.flush(T0));
    const t = seen.filter((x) => x.metric === 't');
    // each passed reading keeps the time it came with
    for (const x of t) expect(x.time).toBe(1_767_225_600 + (x.value as number));
    // every v reading is counted in exactly one window
    const counted = seen
      .filter((x) => x.metric === 'v_count')
      .reduce((n, x) => n + (x.value as number), 0);
    expect(counted).toBe(times.length);
  });
});
