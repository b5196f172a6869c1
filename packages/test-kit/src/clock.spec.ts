import { describe, expect, it } from 'vitest';
import { fakeClock } from './clock.js';

describe('fakeClock', () => {
  it('starts where told and moves only when advanced or set', () => {
    const clock = fakeClock(1_700_000_000_500);
    expect(clock.now()).toBe(1_700_000_000_500);
    expect(clock.nowSeconds()).toBe(1_700_000_000);
    expect(clock.advance(1_500)).toBe(1_700_000_002_000);
    expect(clock.now()).toBe(1_700_000_002_000);
    expect(clock.nowSeconds()).toBe(1_700_000_002);
    clock.set(1_000);
    expect(clock.now()).toBe(1_000);
  });

  it('defaults to a fixed instant, not the wall clock', () => {
    expect(fakeClock().now()).toBe(Date.UTC(2025, 0, 1));
  });

  it('rejects negative or non-finite moves', () => {
    const clock = fakeClock(0);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(() => clock.set(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => fakeClock(Number.NaN)).toThrow(RangeError);
    expect(clock.now()).toBe(0);
  });
});
