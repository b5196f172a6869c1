import { describe, expect, it } from 'vitest';
import { retryDelay } from './retry-schedule.js';

// Unit: pure backoff arithmetic.

describe('retryDelay', () => {
  const policy = { baseMs: 1000, maxMs: 60_000, maxAttempts: 6 };

  it('doubles per attempt, jittered between half and all of it, capped', () => {
    expect([1, 2, 3, 4].map((a) => retryDelay(policy, a, 0))).toEqual([500, 1000, 2000, 4000]);
    expect([1, 2, 3, 4].map((a) => retryDelay(policy, a, 0.999_999))).toEqual([
      1000, 2000, 4000, 8000,
    ]);
    expect(retryDelay({ ...policy, maxAttempts: 100 }, 40, 1)).toBe(60_000);
  });

  it('stops after the last attempt', () => {
    expect(retryDelay(policy, 5, 0.5)).not.toBeNull();
    expect(retryDelay(policy, 6, 0.5)).toBeNull();
  });

  it('honours Retry-After, within the cap', () => {
    expect(retryDelay(policy, 1, 0, 30_000)).toBe(30_000);
    expect(retryDelay(policy, 1, 0, 3_600_000)).toBe(60_000);
    expect(retryDelay(policy, 3, 1, 10)).toBe(4000);
  });
});
