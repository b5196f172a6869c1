/** How values read on screen: short, stable widths, no locale surprises in tests. */

/** `95` → `1m 35s`; `90061` → `1d 1h`: the two largest units. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 1) return seconds === 0 ? '0s' : `${Math.round(seconds * 1000)}ms`;
  const s = Math.floor(seconds);
  for (let i = 0; i < UNITS.length; i++) {
    const [unit, size] = UNITS[i]!;
    if (s < size) continue;
    const whole = Math.floor(s / size);
    const next = UNITS[i + 1];
    const part = next ? Math.floor((s - whole * size) / next[1]) : 0;
    return next && part > 0 ? `${whole}${unit} ${part}${next[0]}` : `${whole}${unit}`;
  }
  return '0s';
}

const UNITS: readonly [string, number][] = [
  ['d', 86_400],
  ['h', 3600],
  ['m', 60],
  ['s', 1],
];

/** `12s ago`, `3m ago`, `never` for a missing time. */
export function formatAgo(iso: string | null, nowMs: number): string {
  if (!iso) return 'never';
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '–';
  const s = Math.max(0, (nowMs - ms) / 1000);
  if (s < 5) return 'just now';
  return `${formatDuration(s)} ago`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A reading for people: at most 4 significant decimals, no exponent for everyday sizes. */
export function formatValue(value: number | string | boolean | null | undefined): string {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 1 : abs >= 1 ? 2 : 4;
  return String(Number(value.toFixed(digits)));
}

/** `1234567` → `1,234,567`. */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `2026-05-04 13:02:11Z`-style time in UTC: unambiguous on a shared wall screen. */
export function formatTime(iso: string | null): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '–';
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}
