import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  it('doubles up to the cap, with jitter between a tenth of it and all of it', () => {
    const options = { initialMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 4, 9].map((n) => backoffDelay(n, 1, options))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(backoffDelay(3, 0, options)).toBe(80);
    expect(backoffDelay(3, 0.5, options)).toBe(440);
  });
});
