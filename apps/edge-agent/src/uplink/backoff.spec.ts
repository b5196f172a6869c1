import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  it('doubles up to the cap, with full jitter above a tenth of it', () => {
    const o = { initialMs: 500, maxMs: 60_000 };
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, 1, o))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(20, 1, o)).toBe(60_000);
    expect(backoffDelay(1000, 0.5, o)).toBe(33_000);
    expect(backoffDelay(3, 0, o)).toBe(400);
    for (let a = 0; a < 40; a++) {
      const d = backoffDelay(a, Math.random(), o);
      expect(d).toBeGreaterThanOrEqual(50);
      expect(d).toBeLessThanOrEqual(60_000);
    }
  });
});
