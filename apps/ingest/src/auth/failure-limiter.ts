/**
 * Counts failed authentications per source in a sliding one-minute window. Pure: the clock
 * is passed in. Bounded: at most `maxSources` sources are tracked; the stalest are forgotten.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly perMinute: number,
    private readonly maxSources = 10_000,
    private readonly windowMs = 60_000,
  ) {}

  /** Seconds until `source` may try again, or 0 if it may try now. */
  retryAfter(source: string, now: number): number {
    const times = this.prune(source, now);
    if (times.length < this.perMinute) return 0;
    return Math.max(1, Math.ceil((times[0]! + this.windowMs - now) / 1000));
  }

  recordFailure(source: string, now: number): void {
    const times = this.prune(source, now);
    times.push(now);
    this.failures.delete(source);
    this.failures.set(source, times);
    if (this.failures.size > this.maxSources) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
  }

  private prune(source: string, now: number): number[] {
    const times = this.failures.get(source) ?? [];
    while (times.length > 0 && times[0]! <= now - this.windowMs) times.shift();
    if (times.length === 0) this.failures.delete(source);
    return times;
  }
}
