/**
 * Reconnect delays: exponential from `baseMs`, capped at `maxMs`, with jitter so that a
 * restarted server is not hit by every dashboard at once. `random` is injected (0 ≤ r < 1).
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export const STREAM_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };

/** Delay before reconnect attempt `attempt` (0 for the first): between half and all of the step. */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + (step / 2) * random());
}
