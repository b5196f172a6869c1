import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Whole-stack benches write one table each to `bench-results/<name>.json`, in the shape
 * `scripts/bench-report.mjs` prints next to the vitest bench groups:
 * `{kind: 'table', title, columns, rows, notes?}`. Anything else in the file (`details`) is
 * for whoever reads the JSON.
 */
export type Cell = string | number | null;

export interface BenchTable {
  kind: 'table';
  title: string;
  columns: string[];
  rows: Cell[][];
  notes?: string[];
  details?: unknown;
}

/** The repository root, from this file's place in apps/ingest/bench/dist. */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

export function writeTable(name: string, table: BenchTable): string {
  const dir = join(ROOT, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(table, null, 2)}\n`);
  return path;
}

export function formatCell(cell: Cell): string {
  if (cell === null) return '-';
  if (typeof cell === 'string') return cell;
  if (!Number.isFinite(cell)) return '-';
  if (Number.isInteger(cell)) return cell.toLocaleString('en');
  return Math.abs(cell) >= 100 ? Math.round(cell).toLocaleString('en') : cell.toFixed(2);
}

export function printTable(table: BenchTable): void {
  const lines = [
    `## ${table.title}`,
    '',
    `| ${table.columns.join(' | ')} |`,
    `|${table.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...table.rows.map((row) => `| ${row.map(formatCell).join(' | ')} |`),
    '',
    ...(table.notes ?? []).map((n) => `- ${n}`),
  ];
  console.log(lines.join('\n'));
}

/** One decimal place for rates and costs in tables: enough, and stable between runs. */
export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
