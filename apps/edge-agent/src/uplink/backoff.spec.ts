import { describe, expect, it } from 'vitest';
import { attemptAfterClose, backoffDelay } from './backoff.js';

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

describe('attemptAfterClose', () => {
  it('starts over only after a connection that stayed up past the stable threshold', () => {
    const o = { initialMs: 500, maxMs: 60_000 };
    // The delay before each reconnect, given how long each connection was up before it
    // ended (undefined: never accepted), as MqttSession chains the two.
    const delays = (upFor: readonly (number | undefined)[]): number[] => {
      let attempt = 0;
      return upFor.map((upForMs) => {
        attempt = attemptAfterClose(attempt, upForMs, 30_000);
        return backoffDelay(attempt++, 1, o);
      });
    };
    // Accepted and closed at once, again and again: the delays grow as for refusals.
    expect(delays([5, 5, 5, 5, 5])).toEqual([500, 1000, 2000, 4000, 8000]);
    expect(delays([undefined, 5, undefined, 29_999])).toEqual([500, 1000, 2000, 4000]);
    // Up for the threshold or longer: back to the minimum, then growing again.
    expect(delays([undefined, undefined, undefined, 30_000, 5, 3600_000])).toEqual([
      500, 1000, 2000, 500, 1000, 500,
    ]);
    expect(attemptAfterClose(7, undefined, 30_000)).toBe(7);
    expect(attemptAfterClose(7, 30_000, 30_000)).toBe(0);
  });
});
