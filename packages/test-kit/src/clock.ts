/** A clock passed to code under test instead of `Date.now()`; moves only when told. */
export interface FakeClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Whole seconds since the epoch (as in JWT `iat`/`exp`). */
  nowSeconds(): number;
  /** Moves forward by `ms` (must not be negative) and returns the new time. */
  advance(ms: number): number;
  /** Jumps to `ms`, backwards too (a wall-clock correction). */
  set(ms: number): void;
}

export function fakeClock(startMs = Date.UTC(2025, 0, 1)): FakeClock {
  if (!Number.isFinite(startMs)) throw new RangeError(`start time must be finite: ${startMs}`);
  let current = startMs;
  return {
    now: () => current,
    nowSeconds: () => Math.floor(current / 1000),
    advance(ms) {
      if (!Number.isFinite(ms) || ms < 0) {
        throw new RangeError(`advance() takes a finite, non-negative duration: ${ms}`);
      }
      current += ms;
      return current;
    },
    set(ms) {
      if (!Number.isFinite(ms)) throw new RangeError(`set() takes a finite time: ${ms}`);
      current = ms;
    },
  };
}
