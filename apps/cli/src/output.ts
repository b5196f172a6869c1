import Table from 'cli-table3';
import { oneLine } from './errors.js';

/** What commands print: aligned tables and key/value views for people, JSON for scripts. */

export interface TextSink {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

const BORDERLESS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

/** A borderless table with upper-case headers, like `kubectl get`; cells are one line each. */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const table = new Table({
    head: columns.map((c) => c.header.toUpperCase()),
    chars: BORDERLESS,
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const row of rows) table.push(columns.map((c) => oneLine(c.value(row), 200)));
  return trimLines(table.toString());
}

/** `key: value` lines with the values aligned. */
export function renderKeyValue(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${oneLine(v, 1000)}`.trimEnd()).join('\n');
}

function trimLines(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** `k=v,k=v`, keys in order, so the same tags always read the same. */
export function formatTags(tags: Readonly<Record<string, string>>): string {
  return Object.keys(tags)
    .sort()
    .map((k) => `${k}=${tags[k]}`)
    .join(',');
}

/** `12s ago`, `5m ago`, `3h ago`, `2d ago`, or `never`. */
export function formatAge(at: string | number | null | undefined, nowMs: number): string {
  if (at === null || at === undefined) return 'never';
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(ms)) return '-';
  const s = Math.round((nowMs - ms) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** An ISO time (second precision) with its age, or `-`. */
export function formatTime(at: string | number | null | undefined, nowMs: number): string {
  if (at === null || at === undefined) return '-';
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(ms)) return '-';
  const iso = new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const age = ms <= nowMs ? ` (${formatAge(ms, nowMs)})` : '';
  return `${iso}${age}`;
}

/** The printer of one command run: JSON when `--json` was given, text otherwise. */
export class Output {
  /** Lines of the last `frame`, to redraw over. */
  private frameLines = 0;

  constructor(
    private readonly stdout: TextSink,
    private readonly stderr: TextSink,
    readonly json: boolean,
  ) {}

  /** Text for people on an interactive terminal: views may redraw in place. */
  get interactive(): boolean {
    return !this.json && this.stdout.isTTY === true;
  }

  /** The command's result: `value` as JSON, or the text `human` renders. */
  result(value: unknown, human: () => string): void {
    const text = this.json ? JSON.stringify(value, null, 2) : human();
    if (text !== '') this.stdout.write(`${text}\n`);
  }

  /** One item of a stream (`tail`): a JSON line with `--json`, else a text line. */
  line(value: unknown, human: () => string): void {
    this.stdout.write(`${this.json ? JSON.stringify(value) : human()}\n`);
  }

  /** A line for people only (never in `--json` output), on stderr. */
  note(text: string): void {
    if (!this.json) this.stderr.write(`${text}\n`);
  }

  /** Progress of long work, redrawn in place; only on an interactive terminal. */
  progress(text: string): void {
    if (!this.json && this.stderr.isTTY) this.stderr.write(`\r\x1b[2K${text}`);
  }

  /** Clears the progress line. */
  progressDone(): void {
    if (!this.json && this.stderr.isTTY) this.stderr.write('\r\x1b[2K');
  }

  /**
   * A view that changes (`--watch`): redrawn in place on an interactive terminal, else
   * printed again below; one JSON line per change with `--json`.
   */
  frame(value: unknown, human: () => string): void {
    if (this.json) {
      this.stdout.write(`${JSON.stringify(value)}\n`);
      return;
    }
    const text = human();
    // Cursor to the first line of the previous frame, then clear to the end of the screen.
    if (this.stdout.isTTY && this.frameLines > 0) {
      this.stdout.write(`\x1b[${this.frameLines}F\x1b[J`);
    }
    this.stdout.write(`${text}\n`);
    this.frameLines = text.split('\n').length;
  }
}

/** `[#######.......]` for a fraction in [0, 1]. */
export function progressBar(fraction: number, width = 20): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** `1.5 MiB`, `512 B`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}
