/**
 * Exponential backoff with full jitter (a uniform delay in [0, cap)), so a fleet of gateways
 * coming back after an ingest outage spreads its reconnects instead of arriving together.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 60_000 };

/** Delay before attempt `attempt` (0 = the first retry); `random` in [0, 1). */
export function backoffDelay(attempt: number, random: number, options = DEFAULT_BACKOFF): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  // Never below a tenth of the cap: an immediate retry storm helps nobody.
  return Math.round(cap * (0.1 + 0.9 * Math.min(Math.max(random, 0), 1)));
}
