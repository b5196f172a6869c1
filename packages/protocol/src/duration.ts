import { z } from 'zod';

/**
 * Durations as people write them in flags and config files: `500ms`, `30s`, `10m`, `2h`,
 * `7d`, `1w`, combined like `1h30m`, or a bare number of seconds. Shared by the CLI, the
 * agent config and the API.
 */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
const BARE = /^\d+(?:\.\d+)?$/;
const COMPOUND = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;

export const DURATION_HINT = 'expected a duration such as 500ms, 90s, 30m, 24h, 7d or 1h30m';

/** Milliseconds, or undefined if `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  const value = text.trim();
  let ms: number;
  if (BARE.test(value)) ms = Number(value) * 1000;
  else if (COMPOUND.test(value)) {
    ms = 0;
    for (const [, amount, unit] of value.matchAll(PART)) {
      ms += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
    }
  } else return undefined;
  return Number.isFinite(ms) && ms <= Number.MAX_SAFE_INTEGER ? Math.round(ms) : undefined;
}

/** `90061000` → `1d1h1m1s`: the reverse, for messages (whole seconds). */
export function formatDuration(ms: number): string {
  let rest = Math.floor(ms / 1000);
  if (rest <= 0) return ms > 0 ? `${Math.round(ms)}ms` : '0s';
  let text = '';
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) text += `${n}${unit}`;
    rest -= n * size;
  }
  return text;
}

/** A duration string (or a number of seconds) parsed to milliseconds. */
export const durationSchema = z
  .union([z.string().max(32), z.number().nonnegative()])
  .transform((value, ctx) => {
    const ms = typeof value === 'number' ? value * 1000 : parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected a duration such as 500ms, 30s, 10m, 2h or 7d',
      });
      return z.NEVER;
    }
    return ms;
  });

/**
 * An instant for queries: `now`, a relative time in the past (`-1h`, `-15m`), an ISO 8601
 * date-time, or epoch milliseconds. Returns epoch milliseconds or undefined.
 */
export function parseInstant(text: string, nowMs: number): number | undefined {
  const t = text.trim();
  if (t === 'now') return nowMs;
  if (t.startsWith('-')) {
    const d = parseDuration(t.slice(1));
    return d === undefined ? undefined : nowMs - d;
  }
  if (/^\d{1,16}$/.test(t)) return Number(t);
  if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) return undefined;
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? undefined : ms;
}
