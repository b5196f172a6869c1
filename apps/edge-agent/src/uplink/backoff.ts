/**
 * Exponential backoff with full jitter (a uniform delay in [0, cap)), so a fleet of gateways
 * coming back after an ingest outage spreads its reconnects instead of arriving together.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 60_000 };

/** A connection up this long was not a failed attempt (see attemptAfterClose). */
export const DEFAULT_STABLE_AFTER_MS = 30_000;

/** Delay before attempt `attempt` (0 = the first retry); `random` in [0, 1). */
export function backoffDelay(attempt: number, random: number, options = DEFAULT_BACKOFF): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  // Never below a tenth of the cap: an immediate retry storm helps nobody.
  return Math.round(cap * (0.1 + 0.9 * Math.min(Math.max(random, 0), 1)));
}

/**
 * The attempt to back off from once a connection ends, `upForMs` after its CONNACK (undefined
 * when it was never accepted). Only a connection that stayed up `stableAfterMs` starts the
 * backoff over. A broker that accepts and then closes straight away (too many refusals per
 * minute, a token found bad after CONNECT, a takeover loop) is failing like one that refuses:
 * resetting on CONNACK would reconnect at the minimum delay forever, hammering the broker and
 * the registry behind it.
 */
export function attemptAfterClose(
  attempt: number,
  upForMs: number | undefined,
  stableAfterMs: number,
): number {
  return upForMs !== undefined && upForMs >= stableAfterMs ? 0 : attempt;
}
