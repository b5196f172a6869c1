#!/usr/bin/env node
// Collects the JSON written by every workspace's `vitest bench --outputJson` into
// bench-results/summary.json and bench-results/summary.md, and prints the tables.
// Within each group, a bench whose name ends in "(floor)" is the baseline: every other
// bench's time is reported as a multiple of it. Nothing here asserts on time.
//
// Whole-stack benches that are not vitest benches write a ready-made table instead:
//   { "kind": "table", "title": string, "columns": string[],
//     "rows": (string | number | null)[][], "notes"?: string[] }
// (other members, e.g. "details", are ignored). Those are printed after the groups.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, join } from 'node:path';

const dir = 'bench-results';
if (!existsSync(dir)) {
  console.error('no bench-results/: run `npm run bench`');
  process.exit(1);
}
const files = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('summary'));
const fmt = (n, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const fmtTime = (ms) => (ms >= 1 ? `${fmt(ms)} ms` : `${fmt(ms * 1000)} µs`);

const summary = {
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  writtenAt: new Date().toISOString(),
  groups: [],
  tables: [],
};
const lines = [
  '# Benchmark results',
  '',
  `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}.`,
  '',
];

for (const file of files.sort()) {
  const data = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  for (const f of data.files ?? []) {
    for (const group of f.groups ?? []) {
      const floor = group.benchmarks.find((b) => b.name.endsWith('(floor)'));
      const rows = group.benchmarks.map((b) => ({
        name: b.name,
        opsPerSec: b.hz,
        meanMs: b.mean,
        p99Ms: b.p99,
        rme: b.rme,
        samples: b.sampleCount ?? b.samples?.length,
        xFloor: floor ? b.mean / floor.mean : undefined,
      }));
      summary.groups.push({ package: basename(file, '.json'), group: group.fullName, rows });
      lines.push(
        `## ${basename(file, '.json')}: ${group.fullName.split(' > ').slice(1).join(' > ')}`,
      );
      lines.push('');
      lines.push('| bench | ops/s | mean | p99 | ± | × floor |');
      lines.push('|---|---:|---:|---:|---:|---:|');
      for (const r of rows) {
        lines.push(
          `| ${r.name} | ${Math.round(r.opsPerSec).toLocaleString('en')} | ${fmtTime(r.meanMs)} | ${fmtTime(r.p99Ms)} | ${fmt(r.rme, 1)}% | ${r.xFloor === undefined ? '-' : fmt(r.xFloor)} |`,
        );
      }
      lines.push('');
    }
  }
}

const cell = (c) =>
  c === null || c === undefined
    ? '-'
    : typeof c === 'number'
      ? Number.isInteger(c)
        ? c.toLocaleString('en')
        : Math.abs(c) >= 100
          ? Math.round(c).toLocaleString('en')
          : fmt(c)
      : String(c);

for (const file of files.sort()) {
  const data = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  if (data.kind !== 'table' || !Array.isArray(data.columns) || !Array.isArray(data.rows)) continue;
  const { title, columns, rows, notes = [] } = data;
  summary.tables.push({ file: basename(file, '.json'), title, columns, rows, notes });
  lines.push(`## ${title ?? basename(file, '.json')}`);
  lines.push('');
  lines.push(`| ${columns.join(' | ')} |`);
  lines.push(`|${columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const row of rows) lines.push(`| ${row.map(cell).join(' | ')} |`);
  lines.push('');
  for (const note of notes) lines.push(`- ${note}`);
  if (notes.length > 0) lines.push('');
}

writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
writeFileSync(join(dir, 'summary.md'), `${lines.join('\n')}\n`);
console.log(lines.join('\n'));
console.log(`written: ${join(dir, 'summary.md')} and ${join(dir, 'summary.json')}`);
