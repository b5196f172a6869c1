/**
 * Time ranges of the charts, and the aggregation window (`every`) each is queried with:
 * about 360 points per chart (1h → 10s, 24h → 5m, 7d → 1h), from a ladder of windows
 * people recognize.
 */
export interface TimeRange {
  id: string;
  label: string;
  ms: number;
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export const TIME_RANGES: readonly TimeRange[] = [
  { id: '15m', label: '15 minutes', ms: 15 * MIN },
  { id: '1h', label: '1 hour', ms: HOUR },
  { id: '6h', label: '6 hours', ms: 6 * HOUR },
  { id: '24h', label: '24 hours', ms: DAY },
  { id: '7d', label: '7 days', ms: 7 * DAY },
  { id: '30d', label: '30 days', ms: 30 * DAY },
];

export const DEFAULT_RANGE = TIME_RANGES[1]!;

/** Windows in the order tried; each is a duration the telemetry API accepts. */
const WINDOWS: readonly [string, number][] = [
  ['1s', 1000],
  ['5s', 5000],
  ['10s', 10_000],
  ['30s', 30_000],
  ['1m', MIN],
  ['5m', 5 * MIN],
  ['15m', 15 * MIN],
  ['1h', HOUR],
  ['6h', 6 * HOUR],
  ['1d', DAY],
];

export const TARGET_POINTS = 360;

/** The smallest window that keeps a range within about {@link TARGET_POINTS} points. */
export function chooseWindow(rangeMs: number): { every: string; everyMs: number } {
  const wanted = rangeMs / TARGET_POINTS;
  for (const [every, everyMs] of WINDOWS) {
    if (everyMs >= wanted) return { every, everyMs };
  }
  const [every, everyMs] = WINDOWS[WINDOWS.length - 1]!;
  return { every, everyMs };
}

export function rangeById(id: string | null | undefined): TimeRange {
  return TIME_RANGES.find((r) => r.id === id) ?? DEFAULT_RANGE;
}
