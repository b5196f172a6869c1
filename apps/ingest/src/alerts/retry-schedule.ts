/**
 * When to try a failed webhook delivery again: exponential backoff with "equal jitter"
 * (half fixed, half random), so retries of many deliveries after an outage spread out
 * instead of arriving together. Pure: randomness is passed in.
 */
export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
  maxAttempts: number;
}

/**
 * The delay after attempt `attempt` (1-based) failed, or null when no attempt is left.
 * `retryAfterMs` (from a 429 or 503 `Retry-After`) is honoured up to `maxMs`.
 */
export function retryDelay(
  policy: RetryPolicy,
  attempt: number,
  unit: number,
  retryAfterMs?: number,
): number | null {
  if (attempt >= policy.maxAttempts) return null;
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt - 1, 30));
  const jittered = Math.round(exp / 2 + unit * (exp / 2));
  return retryAfterMs !== undefined
    ? Math.min(policy.maxMs, Math.max(jittered, retryAfterMs))
    : jittered;
}
