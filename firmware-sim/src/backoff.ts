/**
 * Reconnect delays: exponential with jitter, so a fleet coming back after an ingest outage
 * spreads its reconnects instead of arriving at once.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 5000 };

/** Delay before retry `attempt` (0 = the first); `random` in [0, 1). */
export function backoffDelay(attempt: number, random: number, options = DEFAULT_BACKOFF): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  // At least a tenth of the cap: a retry storm at 0 ms helps nobody.
  return Math.round(cap * (0.1 + 0.9 * Math.min(Math.max(random, 0), 1)));
}
