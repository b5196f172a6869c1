import { gaussian, type Random } from './random.js';

/**
 * How one metric's values evolve. A base shape plus optional effects, applied in this order:
 * shape + drift·t + noise, then spikes, then clamping to [min, max], then rounding; while the
 * signal is stuck it repeats the last value it had before.
 */
export type SignalShape =
  | { kind: 'sine'; base: number; amplitude: number; periodS: number; phase?: number }
  | { kind: 'constant'; value: number }
  /** Cycles through `levels`, holding each for `everyS` seconds. */
  | { kind: 'steps'; levels: number[]; everyS: number };

export interface SignalSpec {
  shape: SignalShape;
  /** Standard deviation of gaussian noise added to each sample. */
  noise?: number;
  /** Units per second added linearly, like a sensor slowly going out of calibration. */
  drift?: number;
  /** Each sample has `probability` of a jump of ±`magnitude` (sign at random). */
  spikes?: { probability: number; magnitude: number };
  /** A stuck-at fault built into the signal: from `fromS` (for `forS`, or for good). */
  stuck?: { fromS: number; forS?: number };
  min?: number;
  max?: number;
  /** Decimal places of the reported value; defaults to 2. */
  decimals?: number;
}

interface StuckWindow {
  fromS: number;
  untilS: number;
}

/**
 * One metric's generator: deterministic given its `random` stream and the sample times.
 * No clock of its own: the caller passes seconds since the device started.
 */
export class Signal {
  readonly #spec: SignalSpec;
  readonly #random: Random;
  readonly #windows: StuckWindow[] = [];
  #held: number | undefined;
  #last: number | undefined;

  constructor(spec: SignalSpec, random: Random) {
    this.#spec = spec;
    this.#random = random;
    if (spec.stuck !== undefined) {
      this.stick(spec.stuck.fromS, spec.stuck.forS ?? Number.POSITIVE_INFINITY);
    }
  }

  /** Stuck-at from `fromS` for `forS` seconds: the last value before `fromS` repeats. */
  stick(fromS: number, forS: number): void {
    this.#windows.push({ fromS, untilS: fromS + forS });
  }

  sample(tS: number): number {
    if (this.#windows.some((w) => tS >= w.fromS && tS < w.untilS)) {
      this.#held ??= this.#last ?? this.#compute(tS);
      return this.#held;
    }
    this.#held = undefined;
    this.#last = this.#compute(tS);
    return this.#last;
  }

  #compute(tS: number): number {
    const spec = this.#spec;
    let value = shapeAt(spec.shape, tS) + (spec.drift ?? 0) * tS;
    if (spec.noise !== undefined && spec.noise > 0) value += gaussian(this.#random) * spec.noise;
    if (spec.spikes !== undefined && this.#random() < spec.spikes.probability) {
      value += (this.#random() < 0.5 ? -1 : 1) * spec.spikes.magnitude;
    }
    if (spec.min !== undefined) value = Math.max(spec.min, value);
    if (spec.max !== undefined) value = Math.min(spec.max, value);
    return round(value, spec.decimals ?? 2);
  }
}

export function shapeAt(shape: SignalShape, tS: number): number {
  switch (shape.kind) {
    case 'sine':
      return (
        shape.base +
        shape.amplitude * Math.sin((2 * Math.PI * tS) / shape.periodS + (shape.phase ?? 0))
      );
    case 'constant':
      return shape.value;
    case 'steps': {
      const index = Math.floor(tS / shape.everyS) % shape.levels.length;
      return shape.levels[Math.max(0, index)]!;
    }
  }
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  const rounded = Math.round(value * factor) / factor;
  // -0 would print as "0" anyway; keep the number and its text in agreement.
  return rounded === 0 ? 0 : rounded;
}
