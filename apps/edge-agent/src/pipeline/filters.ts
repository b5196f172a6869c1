import { durationSchema } from '@outpost/protocol/duration';
import { deviceIdSchema, METRIC_NAME_PATTERN, metricNameSchema } from '@outpost/protocol/ids';
import { z } from 'zod';
import { unitSchema } from '../sources/line-parsers.js';
import type { SourceReading } from '../sources/source.js';
import { isSenmlUnit, knownUnit, unitConversion } from './units.js';

/**
 * The `pipeline:` steps of agent.yaml, applied in order to the readings of every source
 * before batching. Pure: time is the `now` (epoch ms) each call is given.
 *
 * Steps select readings by metric (and optionally device); others pass through untouched.
 * Non-numeric values pass `range`, `aggregate` and `units` untouched; `deadband` passes
 * them when they change.
 *
 * Clock rule. Steps decide by `now`, the agent's clock when the readings arrived, never by
 * a reading's own timestamp, which they pass through unchanged (a reading keeps its
 * wall-clock time). When `now` goes backwards (a clock correction) a step does not wait
 * for the old time to come back: `deadband` lets the next value through, `rateLimit`
 * starts a new interval, and an open `aggregate` window closes at once and is emitted
 * (stamped with its start). When `now` jumps forwards, windows that ended are emitted once;
 * no empty windows are made up for the gap.
 */

export type StepCounters = Record<string, number>;

export interface PipelineStep {
  readonly name: string;
  process(readings: readonly SourceReading[], now: number): SourceReading[];
  /** Readings that fall due at `now` (closed aggregate windows). */
  tick(now: number): SourceReading[];
  /** Everything held back, at shutdown. */
  flush(): SourceReading[];
  /** When {@link tick} next has something to emit (epoch ms), or undefined. */
  nextDueAt(): number | undefined;
  readonly counters: Readonly<StepCounters>;
}

/** Most (device, metric) keys a step remembers; the oldest is forgotten beyond it. */
export const MAX_STEP_KEYS = 50_000;

// ---------------------------------------------------------------------------------------
// Configuration

const oneOrMany = <T extends z.ZodType>(schema: T) =>
  z.union([schema, z.array(schema).min(1).max(256)]);

const selectorFields = {
  metric: oneOrMany(metricNameSchema).optional(),
  device: oneOrMany(deviceIdSchema).optional(),
};

export const rangeStepSchema = z
  .strictObject({
    ...selectorFields,
    min: z.number().optional(),
    max: z.number().optional(),
    /** `drop` out-of-range readings, or `clamp` them to the bound. */
    action: z.enum(['drop', 'clamp']).default('drop'),
  })
  .refine((c) => c.min !== undefined || c.max !== undefined, 'give min, max or both')
  .refine((c) => c.min === undefined || c.max === undefined || c.min <= c.max, 'min > max');

export const deadbandStepSchema = z.strictObject({
  ...selectorFields,
  /** A value passes when it differs from the last one passed by more than this. */
  delta: z.number().nonnegative(),
  /** And at least the first value after this long, changed or not. */
  maxSilence: durationSchema.optional(),
});

export const rateLimitStepSchema = z
  .strictObject({
    ...selectorFields,
    max: z.number().int().min(1),
    per: durationSchema,
  })
  .refine((c) => c.per > 0, { message: 'per must be positive', path: ['per'] });

export const AGGREGATE_FNS = ['mean', 'min', 'max', 'count', 'last', 'sum'] as const;
export type AggregateFn = (typeof AGGREGATE_FNS)[number];

export const aggregateStepSchema = z
  .strictObject({
    metric: oneOrMany(metricNameSchema),
    device: oneOrMany(deviceIdSchema).optional(),
    /** Window length; windows are aligned to multiples of it since the epoch. */
    every: durationSchema,
    /** Each emits `<metric>_<fn>` at the window's end, stamped with the window's start. */
    fn: oneOrMany(z.enum(AGGREGATE_FNS)),
    /** Pass the raw readings on as well. */
    keepRaw: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    if (c.every < 100) {
      ctx.addIssue({ code: 'custom', path: ['every'], message: 'every is at least 100ms' });
    }
    for (const metric of asList(c.metric)) {
      for (const fn of asList(c.fn)) {
        if (!METRIC_NAME_PATTERN.test(`${metric}_${fn}`)) {
          ctx.addIssue({
            code: 'custom',
            path: ['metric'],
            message: `${metric}_${fn} is too long for a metric name`,
          });
        }
      }
    }
  });

export const unitsStepSchema = z
  .strictObject({
    ...selectorFields,
    /** The unit values come in; defaults to each reading's own unit. */
    from: unitSchema.optional(),
    /** A SenML unit (RFC 8428 §12.1, RFC 8798). */
    to: unitSchema,
    /** Round converted values to this many decimals. */
    decimals: z.number().int().min(0).max(12).optional(),
  })
  .superRefine((c, ctx) => {
    if (!isSenmlUnit(c.to)) {
      ctx.addIssue({ code: 'custom', path: ['to'], message: `${c.to} is not a SenML unit` });
    } else if (!knownUnit(c.to)) {
      ctx.addIssue({ code: 'custom', path: ['to'], message: `no conversion to ${c.to}` });
    }
    if (c.from !== undefined && unitConversion(c.from, c.to) === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['from'],
        message: `cannot convert ${c.from} to ${c.to}`,
      });
    }
  });

export type RangeStepConfig = z.output<typeof rangeStepSchema>;
export type DeadbandStepConfig = z.output<typeof deadbandStepSchema>;
export type RateLimitStepConfig = z.output<typeof rateLimitStepSchema>;
export type AggregateStepConfig = z.output<typeof aggregateStepSchema>;
export type UnitsStepConfig = z.output<typeof unitsStepSchema>;

export type PipelineStepConfig =
  | { kind: 'range'; config: RangeStepConfig }
  | { kind: 'deadband'; config: DeadbandStepConfig }
  | { kind: 'rateLimit'; config: RateLimitStepConfig }
  | { kind: 'aggregate'; config: AggregateStepConfig }
  | { kind: 'units'; config: UnitsStepConfig };

const STEP_KINDS = ['range', 'deadband', 'rateLimit', 'aggregate', 'units'] as const;

/** One entry of `pipeline:`, e.g. `- range: {metric: temperature, min: -40, max: 125}`. */
export const pipelineStepSchema = z
  .strictObject({
    range: rangeStepSchema.optional(),
    deadband: deadbandStepSchema.optional(),
    rateLimit: rateLimitStepSchema.optional(),
    aggregate: aggregateStepSchema.optional(),
    units: unitsStepSchema.optional(),
  })
  .superRefine((step, ctx) => {
    const given = STEP_KINDS.filter((kind) => step[kind] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `a step is exactly one of ${STEP_KINDS.join(', ')}`,
      });
    }
  })
  .transform((step): PipelineStepConfig => {
    if (step.range) return { kind: 'range', config: step.range };
    if (step.deadband) return { kind: 'deadband', config: step.deadband };
    if (step.rateLimit) return { kind: 'rateLimit', config: step.rateLimit };
    if (step.aggregate) return { kind: 'aggregate', config: step.aggregate };
    return { kind: 'units', config: step.units! };
  });

/** The `pipeline:` section. */
export const pipelineSchema = z.array(pipelineStepSchema).max(64).default([]);
export type PipelineConfig = z.output<typeof pipelineSchema>;

// ---------------------------------------------------------------------------------------
// Steps

function asList<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? value : [value as T];
}

class Selector {
  readonly #metrics: ReadonlySet<string> | undefined;
  readonly #devices: ReadonlySet<string> | undefined;

  constructor(metric?: string | readonly string[], device?: string | readonly string[]) {
    this.#metrics = metric === undefined ? undefined : new Set(asList(metric));
    this.#devices = device === undefined ? undefined : new Set(asList(device));
  }

  matches(reading: SourceReading): boolean {
    return (
      (this.#metrics === undefined || this.#metrics.has(reading.metric)) &&
      (this.#devices === undefined || this.#devices.has(reading.device))
    );
  }
}

/** Device ids cannot hold `/`, so this key is unique per (device, metric). */
const keyOf = (reading: SourceReading) => `${reading.device}/${reading.metric}`;

/** A Map that forgets its oldest key beyond {@link MAX_STEP_KEYS}. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (!map.has(key) && map.size >= MAX_STEP_KEYS) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}

abstract class StatelessTiming {
  tick(_now: number): SourceReading[] {
    return [];
  }

  flush(): SourceReading[] {
    return [];
  }

  nextDueAt(): number | undefined {
    return undefined;
  }
}

export class RangeStep extends StatelessTiming implements PipelineStep {
  readonly name = 'range';
  readonly counters = { dropped: 0, clamped: 0 };
  readonly #selector: Selector;
  readonly #min: number;
  readonly #max: number;
  readonly #clamp: boolean;

  constructor(config: RangeStepConfig) {
    super();
    this.#selector = new Selector(config.metric, config.device);
    this.#min = config.min ?? Number.NEGATIVE_INFINITY;
    this.#max = config.max ?? Number.POSITIVE_INFINITY;
    this.#clamp = config.action === 'clamp';
  }

  process(readings: readonly SourceReading[], _now?: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (const reading of readings) {
      const { value } = reading;
      if (
        typeof value !== 'number' ||
        (value >= this.#min && value <= this.#max) ||
        !this.#selector.matches(reading)
      ) {
        out.push(reading);
      } else if (this.#clamp) {
        this.counters.clamped++;
        out.push({ ...reading, value: value < this.#min ? this.#min : this.#max });
      } else {
        this.counters.dropped++;
      }
    }
    return out;
  }
}

export class DeadbandStep extends StatelessTiming implements PipelineStep {
  readonly name = 'deadband';
  readonly counters = { dropped: 0 };
  readonly #selector: Selector;
  readonly #delta: number;
  readonly #maxSilence: number | undefined;
  readonly #last = new Map<string, { value: SourceReading['value']; at: number }>();

  constructor(config: DeadbandStepConfig) {
    super();
    this.#selector = new Selector(config.metric, config.device);
    this.#delta = config.delta;
    this.#maxSilence = config.maxSilence;
  }

  process(readings: readonly SourceReading[], now: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (const reading of readings) {
      if (!this.#selector.matches(reading)) {
        out.push(reading);
        continue;
      }
      const key = keyOf(reading);
      const last = this.#last.get(key);
      const pass =
        last === undefined ||
        now < last.at || // the clock went back: start over
        this.#changed(last.value, reading.value) ||
        (this.#maxSilence !== undefined && now - last.at >= this.#maxSilence);
      if (pass) {
        remember(this.#last, key, { value: reading.value, at: now });
        out.push(reading);
      } else {
        this.counters.dropped++;
      }
    }
    return out;
  }

  #changed(before: SourceReading['value'], after: SourceReading['value']): boolean {
    if (typeof before === 'number' && typeof after === 'number') {
      return Math.abs(after - before) > this.#delta;
    }
    return before !== after;
  }
}

export class RateLimitStep extends StatelessTiming implements PipelineStep {
  readonly name = 'rateLimit';
  readonly counters = { dropped: 0 };
  readonly #selector: Selector;
  readonly #max: number;
  readonly #per: number;
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(config: RateLimitStepConfig) {
    super();
    this.#selector = new Selector(config.metric, config.device);
    this.#max = config.max;
    this.#per = config.per;
  }

  process(readings: readonly SourceReading[], now: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (const reading of readings) {
      if (!this.#selector.matches(reading)) {
        out.push(reading);
        continue;
      }
      const key = keyOf(reading);
      let window = this.#windows.get(key);
      if (window === undefined || now < window.start || now >= window.start + this.#per) {
        window = { start: now, count: 0 };
        remember(this.#windows, key, window);
      }
      if (window.count < this.#max) {
        window.count++;
        out.push(reading);
      } else {
        this.counters.dropped++;
      }
    }
    return out;
  }
}

interface Window {
  device: string;
  metric: string;
  unit: string | undefined;
  start: number;
  end: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  last: number;
}

export class AggregateStep implements PipelineStep {
  readonly name = 'aggregate';
  readonly counters = { windows: 0, closedEarly: 0, absorbed: 0 };
  readonly #selector: Selector;
  readonly #every: number;
  readonly #fns: readonly AggregateFn[];
  readonly #keepRaw: boolean;
  readonly #windows = new Map<string, Window>();

  constructor(config: AggregateStepConfig) {
    this.#selector = new Selector(config.metric, config.device);
    this.#every = config.every;
    this.#fns = asList(config.fn);
    this.#keepRaw = config.keepRaw;
  }

  process(readings: readonly SourceReading[], now: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (const reading of readings) {
      const { value } = reading;
      if (typeof value !== 'number' || !this.#selector.matches(reading)) {
        out.push(reading);
        continue;
      }
      if (this.#keepRaw) out.push(reading);
      else this.counters.absorbed++;
      const key = keyOf(reading);
      let window = this.#windows.get(key);
      if (window !== undefined && (now >= window.end || now < window.start)) {
        if (now < window.start) this.counters.closedEarly++;
        this.#emit(window, out);
        this.#windows.delete(key);
        window = undefined;
      }
      if (window === undefined) {
        const start = Math.floor(now / this.#every) * this.#every;
        window = {
          device: reading.device,
          metric: reading.metric,
          unit: reading.unit,
          start,
          end: start + this.#every,
          count: 0,
          sum: 0,
          min: value,
          max: value,
          last: value,
        };
        remember(this.#windows, key, window);
      }
      window.count++;
      window.sum += value;
      if (value < window.min) window.min = value;
      if (value > window.max) window.max = value;
      window.last = value;
      if (reading.unit !== undefined) window.unit = reading.unit;
    }
    return out;
  }

  tick(now: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (const [key, window] of this.#windows) {
      if (now >= window.end || now < window.start) {
        if (now < window.start) this.counters.closedEarly++;
        this.#emit(window, out);
        this.#windows.delete(key);
      }
    }
    return out;
  }

  flush(): SourceReading[] {
    const out: SourceReading[] = [];
    for (const window of this.#windows.values()) this.#emit(window, out);
    this.#windows.clear();
    return out;
  }

  nextDueAt(): number | undefined {
    let due: number | undefined;
    for (const window of this.#windows.values()) {
      if (due === undefined || window.end < due) due = window.end;
    }
    return due;
  }

  #emit(window: Window, out: SourceReading[]): void {
    this.counters.windows++;
    const time = window.start / 1000;
    for (const fn of this.#fns) {
      const value =
        fn === 'mean' ? window.sum / window.count : fn === 'count' ? window.count : window[fn];
      const reading: SourceReading = {
        device: window.device,
        metric: `${window.metric}_${fn}`,
        time,
        value,
      };
      if (fn !== 'count' && window.unit !== undefined) reading.unit = window.unit;
      out.push(reading);
    }
  }
}

export class UnitsStep extends StatelessTiming implements PipelineStep {
  readonly name = 'units';
  readonly counters = { converted: 0, mismatched: 0, unknown: 0 };
  readonly #selector: Selector;
  readonly #from: string | undefined;
  readonly #to: string;
  readonly #decimals: number | undefined;
  readonly #conversions = new Map<string, ((value: number) => number) | undefined>();

  constructor(config: UnitsStepConfig) {
    super();
    this.#selector = new Selector(config.metric, config.device);
    this.#from = config.from;
    this.#to = config.to;
    this.#decimals = config.decimals;
  }

  process(readings: readonly SourceReading[], _now?: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (const reading of readings) {
      const { value, unit } = reading;
      if (typeof value !== 'number' || unit === this.#to || !this.#selector.matches(reading)) {
        out.push(reading);
        continue;
      }
      if (this.#from !== undefined && unit !== undefined && unit !== this.#from) {
        this.counters.mismatched++; // says it is in another unit: leave it alone
        out.push(reading);
        continue;
      }
      const from = this.#from ?? unit;
      const convert = from === undefined ? undefined : this.#conversion(from);
      if (convert === undefined) {
        this.counters.unknown++;
        out.push(reading);
        continue;
      }
      let converted = convert(value);
      if (this.#decimals !== undefined) converted = Number(converted.toFixed(this.#decimals));
      this.counters.converted++;
      out.push({ ...reading, value: converted, unit: this.#to });
    }
    return out;
  }

  #conversion(from: string): ((value: number) => number) | undefined {
    if (!this.#conversions.has(from)) this.#conversions.set(from, unitConversion(from, this.#to));
    return this.#conversions.get(from);
  }
}

export function createStep(step: PipelineStepConfig): PipelineStep {
  switch (step.kind) {
    case 'range':
      return new RangeStep(step.config);
    case 'deadband':
      return new DeadbandStep(step.config);
    case 'rateLimit':
      return new RateLimitStep(step.config);
    case 'aggregate':
      return new AggregateStep(step.config);
    case 'units':
      return new UnitsStep(step.config);
  }
}

/**
 * The configured steps in order. What a step emits from `tick` or `flush` goes through the
 * steps after it, so an aggregate can still be unit-converted or rate-limited.
 */
export class Pipeline {
  readonly #steps: PipelineStep[];

  constructor(config: readonly PipelineStepConfig[]) {
    this.#steps = config.map(createStep);
  }

  process(readings: readonly SourceReading[], now: number): SourceReading[] {
    return this.#run(readings, 0, now);
  }

  tick(now: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (let i = 0; i < this.#steps.length; i++) {
      const emitted = this.#steps[i]!.tick(now);
      if (emitted.length > 0) out.push(...this.#run(emitted, i + 1, now));
    }
    return out;
  }

  /** Emits what the steps hold (open windows), e.g. at shutdown; `now` feeds later steps. */
  flush(now: number): SourceReading[] {
    const out: SourceReading[] = [];
    for (let i = 0; i < this.#steps.length; i++) {
      const emitted = this.#steps[i]!.flush();
      if (emitted.length > 0) out.push(...this.#run(emitted, i + 1, now));
    }
    return out;
  }

  nextDueAt(): number | undefined {
    let due: number | undefined;
    for (const step of this.#steps) {
      const at = step.nextDueAt();
      if (at !== undefined && (due === undefined || at < due)) due = at;
    }
    return due;
  }

  /** Counters per step, in order: what each dropped, clamped, converted or emitted. */
  stats(): { step: string; counters: StepCounters }[] {
    return this.#steps.map((step) => ({ step: step.name, counters: { ...step.counters } }));
  }

  #run(readings: readonly SourceReading[], from: number, now: number): SourceReading[] {
    let out = readings as SourceReading[];
    for (let i = from; i < this.#steps.length && out.length > 0; i++) {
      out = this.#steps[i]!.process(out, now);
    }
    return out === readings ? [...out] : out;
  }
}
