/**
 * One chart's points: the aggregated history from the query API, then live readings from
 * the stream folded into the same windows (a running mean per window), so live points do
 * not crowd the aggregated ones. Arrays are in uPlot's shape: seconds, values.
 */
export interface LiveSeries {
  /** Window starts, epoch seconds, ascending. */
  t: number[];
  v: (number | null)[];
  /** Readings folded into each window; 0 for windows from the history (means as given). */
  n: number[];
  everyMs: number;
}

export function emptySeries(everyMs: number): LiveSeries {
  return { t: [], v: [], n: [], everyMs };
}

/** A reading's value as a number for plotting: booleans as 0/1, text not plotted. */
export function plottable(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return null;
}

/** The series from query points (`time` ISO, already aggregated per `everyMs`). */
export function fromHistory(
  points: readonly { time: string; value: unknown }[],
  everyMs: number,
): LiveSeries {
  const s = emptySeries(everyMs);
  for (const p of points) {
    const ms = Date.parse(p.time);
    if (Number.isNaN(ms)) continue;
    s.t.push(ms / 1000);
    s.v.push(plottable(p.value));
    s.n.push(0);
  }
  return s;
}

/**
 * Folds a live reading into its window. Returns whether the series changed. A reading
 * older than the last window (late or backfilled) is ignored: the history query owns the past.
 */
export function appendReading(s: LiveSeries, timeMs: number, value: number): boolean {
  const start = (Math.floor(timeMs / s.everyMs) * s.everyMs) / 1000;
  const last = s.t.length - 1;
  if (last >= 0 && start < s.t[last]!) return false;
  if (last >= 0 && start === s.t[last]) {
    const n = s.n[last]!;
    const prev = s.v[last];
    if (n === 0 || prev === null || prev === undefined) {
      // The window came from the history (its mean is over readings we did not see): the
      // live reading joins it as one more reading.
      s.v[last] = prev === null || prev === undefined ? value : (prev + value) / 2;
      s.n[last] = n === 0 ? 2 : n + 1;
    } else {
      s.v[last] = prev + (value - prev) / (n + 1);
      s.n[last] = n + 1;
    }
    return true;
  }
  s.t.push(start);
  s.v.push(value);
  s.n.push(1);
  return true;
}

/** Drops windows that start before `fromMs` (the range slid past them). */
export function trimBefore(s: LiveSeries, fromMs: number): void {
  const from = fromMs / 1000;
  let i = 0;
  while (i < s.t.length && s.t[i]! < from) i++;
  if (i === 0) return;
  s.t.splice(0, i);
  s.v.splice(0, i);
  s.n.splice(0, i);
}
