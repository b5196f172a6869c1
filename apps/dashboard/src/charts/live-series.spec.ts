import { describe, expect, it } from 'vitest';
import { appendReading, emptySeries, fromHistory, plottable, trimBefore } from './live-series.js';

describe('live series', () => {
  it('folds live readings into their window as a running mean', () => {
    const s = emptySeries(10_000);
    expect(appendReading(s, 100_000, 1)).toBe(true);
    appendReading(s, 105_000, 3);
    appendReading(s, 109_999, 5);
    appendReading(s, 110_000, 10);
    expect(s.t).toEqual([100, 110]);
    expect(s.v).toEqual([3, 10]);
    expect(s.n).toEqual([3, 1]);
  });

  it('continues the history, joining its last window', () => {
    const s = fromHistory(
      [
        { time: '1970-01-01T00:01:30.000Z', value: 4 },
        { time: '1970-01-01T00:01:40.000Z', value: 6 },
      ],
      10_000,
    );
    appendReading(s, 105_000, 8);
    appendReading(s, 112_000, 1);
    expect(s.t).toEqual([90, 100, 110]);
    expect(s.v).toEqual([4, 7, 1]);
  });

  it('ignores readings older than its last window (the history owns the past)', () => {
    const s = emptySeries(1000);
    appendReading(s, 5000, 1);
    expect(appendReading(s, 3000, 9)).toBe(false);
    expect(s.v).toEqual([1]);
  });

  it('plots numbers and booleans, not text or non-finite numbers', () => {
    expect(plottable(2.5)).toBe(2.5);
    expect(plottable(true)).toBe(1);
    expect(plottable(false)).toBe(0);
    expect(plottable('open')).toBeNull();
    expect(plottable(Number.NaN)).toBeNull();
    expect(plottable(null)).toBeNull();
    const s = fromHistory(
      [
        { time: '1970-01-01T00:00:01Z', value: 'x' },
        { time: 'bad', value: 1 },
      ],
      1000,
    );
    expect(s.v).toEqual([null]);
  });

  it('drops windows that slid out of the range', () => {
    const s = emptySeries(1000);
    for (let t = 0; t < 10_000; t += 1000) appendReading(s, t, t);
    trimBefore(s, 7000);
    expect(s.t).toEqual([7, 8, 9]);
    expect(s.v).toEqual([7000, 8000, 9000]);
    trimBefore(s, 0);
    expect(s.t).toHaveLength(3);
  });
});
