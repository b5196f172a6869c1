#!/usr/bin/env node
// Fails the build when the dashboard's JavaScript, gzipped, exceeds its budget. Measures
// every .js file Vite wrote to dist/ (what a first visit downloads), at gzip level 9.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const BUDGET_BYTES = 150 * 1024;
const dist = fileURLToPath(new URL('../dist/', import.meta.url));

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

let js = 0;
let css = 0;
const rows = [];
for (const path of files(dist)) {
  const isJs = path.endsWith('.js');
  if (!isJs && !path.endsWith('.css')) continue;
  const raw = readFileSync(path);
  const gz = gzipSync(raw, { level: 9 }).length;
  if (isJs) js += gz;
  else css += gz;
  rows.push(
    `  ${relative(dist, path)}  ${(raw.length / 1024).toFixed(1)} kB, ${(gz / 1024).toFixed(1)} kB gzip`,
  );
}
if (rows.length === 0) {
  console.error(`no assets in ${dist}: run vite build first`);
  process.exit(1);
}
console.log(rows.join('\n'));
const verdict = js <= BUDGET_BYTES ? 'within' : 'OVER';
console.log(
  `dashboard JS: ${(js / 1024).toFixed(1)} kB gzip (${verdict} the ${BUDGET_BYTES / 1024} kB budget); CSS ${(css / 1024).toFixed(1)} kB gzip`,
);
if (js > BUDGET_BYTES) process.exit(1);
