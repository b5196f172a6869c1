import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

const policy = { baseMs: 1000, maxMs: 30_000 };

describe('backoffDelay', () => {
  it('doubles per attempt between half and all of the step', () => {
    expect(backoffDelay(0, policy, () => 0)).toBe(500);
    expect(backoffDelay(0, policy, () => 0.999999)).toBe(1000);
    expect(backoffDelay(1, policy, () => 0)).toBe(1000);
    expect(backoffDelay(3, policy, () => 0.5)).toBe(6000);
  });

  it('is capped, however many attempts failed', () => {
    expect(backoffDelay(5, policy, () => 0.999999)).toBe(30_000);
    expect(backoffDelay(1000, policy, () => 0)).toBe(15_000);
  });
});
