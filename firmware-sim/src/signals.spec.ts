import { describe, expect, it } from 'vitest';
import { ReadingSource } from './device.js';
import { deriveSeed, gaussian, mulberry32 } from './random.js';
import { Signal, type SignalSpec } from './signals.js';

const times = Array.from({ length: 200 }, (_, i) => i * 0.5);

function series(spec: SignalSpec, seed = 1): number[] {
  const signal = new Signal(spec, mulberry32(seed));
  return times.map((t) => signal.sample(t));
}

describe('mulberry32', () => {
  it('is deterministic per seed, in [0, 1), and differs between seeds', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(c()).not.toBe(xs[0]);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });

  it('gives standard normal samples through gaussian()', () => {
    const random = mulberry32(9);
    const xs = Array.from({ length: 5000 }, () => gaussian(random));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(sd).toBeGreaterThan(0.95);
    expect(sd).toBeLessThan(1.05);
  });

  it('derives a different seed per name', () => {
    expect(deriveSeed(1, 't')).not.toBe(deriveSeed(1, 'h'));
    expect(deriveSeed(1, 't')).toBe(deriveSeed(1, 't'));
  });
});

describe('Signal', () => {
  const noisySine: SignalSpec = {
    shape: { kind: 'sine', base: 20, amplitude: 5, periodS: 60 },
    noise: 0.2,
    spikes: { probability: 0.05, magnitude: 10 },
  };

  it('is deterministic given the seed and the sample times', () => {
    expect(series(noisySine, 7)).toEqual(series(noisySine, 7));
    expect(series(noisySine, 7)).not.toEqual(series(noisySine, 8));
  });

  it('follows a sine without noise, rounded to 2 decimals by default', () => {
    const values = series({ shape: { kind: 'sine', base: 20, amplitude: 5, periodS: 60 } });
    expect(values[0]).toBe(20);
    expect(values[30]).toBe(25); // t = 15 s: a quarter period
    expect(values[90]).toBe(15); // t = 45 s
    expect(values[120]).toBe(20); // t = 60 s, not -0 or 19.999...
  });

  it('adds noise around the shape', () => {
    const values = series({ shape: { kind: 'constant', value: 10 }, noise: 0.5, decimals: 4 });
    const mean = values.reduce((s, x) => s + x, 0) / values.length;
    expect(Math.abs(mean - 10)).toBeLessThan(0.15);
    expect(new Set(values).size).toBeGreaterThan(150);
  });

  it('drifts linearly', () => {
    const values = series({ shape: { kind: 'constant', value: 10 }, drift: 0.1 });
    expect(values[0]).toBe(10);
    expect(values[20]).toBe(11); // t = 10 s
    expect(values[199]).toBe(19.95);
  });

  it('spikes by ± magnitude with about the given probability', () => {
    const values = series({
      shape: { kind: 'constant', value: 0 },
      spikes: { probability: 0.1, magnitude: 50 },
    });
    const spikes = values.filter((v) => v !== 0);
    expect(spikes.every((v) => v === 50 || v === -50)).toBe(true);
    expect(spikes.length).toBeGreaterThan(8);
    expect(spikes.length).toBeLessThan(40);
  });

  it('steps through its levels', () => {
    const values = series({ shape: { kind: 'steps', levels: [1, 2, 3], everyS: 10 } });
    expect(values.slice(0, 20).every((v) => v === 1)).toBe(true); // 0 ≤ t < 10
    expect(values[20]).toBe(2);
    expect(values[40]).toBe(3);
    expect(values[60]).toBe(1); // wraps around
  });

  it('stuck-at repeats the last value before the window, then recovers', () => {
    const spec: SignalSpec = {
      shape: { kind: 'sine', base: 0, amplitude: 10, periodS: 20 },
      stuck: { fromS: 10, forS: 20 },
    };
    const values = series(spec);
    const before = values[19]!; // t = 9.5 s
    expect(values.slice(20, 60).every((v) => v === before)).toBe(true); // 10 ≤ t < 30
    expect(values[60]).not.toBe(before);
    expect(values[60]).toBe(0); // t = 30 s: back on the sine
  });

  it('can be stuck while running, and clamps and rounds', () => {
    const signal = new Signal(
      { shape: { kind: 'constant', value: 120 }, drift: -1, max: 100, decimals: 0 },
      mulberry32(1),
    );
    expect(signal.sample(0)).toBe(100);
    expect(signal.sample(30)).toBe(90);
    signal.stick(31, 5);
    expect(signal.sample(32)).toBe(90);
    expect(signal.sample(35.9)).toBe(90);
    expect(signal.sample(36)).toBe(84);
  });
});

describe('ReadingSource', () => {
  const metrics = [
    {
      name: 't',
      signal: { shape: { kind: 'sine', base: 20, amplitude: 5, periodS: 60 }, noise: 1 },
    },
    { name: 'h', signal: { shape: { kind: 'constant', value: 40 }, noise: 1 } },
  ] satisfies { name: string; signal: SignalSpec }[];

  it('samples every metric, in order, deterministically per seed', () => {
    const a = new ReadingSource(metrics, 5);
    const b = new ReadingSource(metrics, 5);
    const first = a.sample(1);
    expect(first.map(([m]) => m)).toEqual(['t', 'h']);
    expect(b.sample(1)).toEqual(first);
  });

  it('gives each metric its own random stream', () => {
    const both = new ReadingSource(metrics, 5);
    const humidityOnly = new ReadingSource([metrics[1]!], 5);
    const h = times.map((t) => both.sample(t)[1]![1]);
    expect(times.map((t) => humidityOnly.sample(t)[0]![1])).toEqual(h);
  });

  it('sticks one metric on demand', () => {
    const source = new ReadingSource(metrics, 5);
    const last = source.sample(1);
    expect(source.stick('h', 2, 10)).toBe(true);
    expect(source.stick('nope', 2, 10)).toBe(false);
    expect(source.sample(3)[1]).toEqual(last[1]);
    expect(source.sample(3)[0]).not.toEqual(last[0]);
  });
});
