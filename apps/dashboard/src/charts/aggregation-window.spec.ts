import { describe, expect, it } from 'vitest';
import {
  chooseWindow,
  DEFAULT_RANGE,
  rangeById,
  TARGET_POINTS,
  TIME_RANGES,
} from './aggregation-window.js';

describe('chooseWindow', () => {
  it.each([
    ['15m', '5s'],
    ['1h', '10s'],
    ['6h', '1m'],
    ['24h', '5m'],
    ['7d', '1h'],
    ['30d', '6h'],
  ])('%s → %s', (range, every) => {
    expect(chooseWindow(rangeById(range).ms).every).toBe(every);
  });

  it('keeps every range within the target number of points', () => {
    for (const r of TIME_RANGES) {
      expect(r.ms / chooseWindow(r.ms).everyMs).toBeLessThanOrEqual(TARGET_POINTS);
    }
  });

  it('falls back to the largest window for very long ranges, and 1s for tiny ones', () => {
    expect(chooseWindow(10 * 365 * 86_400_000).every).toBe('1d');
    expect(chooseWindow(1000).every).toBe('1s');
  });

  it('reads an unknown range id as the default', () => {
    expect(rangeById('2y')).toBe(DEFAULT_RANGE);
    expect(rangeById(null)).toBe(DEFAULT_RANGE);
  });
});
