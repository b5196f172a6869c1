import { describe, expect, it } from 'vitest';
import { FailureLimiter } from './failure-limiter.js';

describe('FailureLimiter', () => {
  it('blocks a source after N failures in a minute and lets it go after the window', () => {
    const l = new FailureLimiter(3);
    for (const t of [0, 1000, 2000]) {
      expect(l.retryAfter('a', t)).toBe(0);
      l.recordFailure('a', t);
    }
    expect(l.retryAfter('a', 2500)).toBe(58);
    expect(l.retryAfter('b', 2500)).toBe(0);
    expect(l.retryAfter('a', 60_001)).toBe(0);
  });

  it('tracks a bounded number of sources, forgetting the stalest', () => {
    const l = new FailureLimiter(1, 2);
    l.recordFailure('a', 0);
    l.recordFailure('b', 1);
    l.recordFailure('c', 2);
    expect(l.retryAfter('a', 3)).toBe(0);
    expect(l.retryAfter('b', 3)).toBeGreaterThan(0);
    expect(l.retryAfter('c', 3)).toBeGreaterThan(0);
  });
});
