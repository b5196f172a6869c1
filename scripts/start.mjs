#!/usr/bin/env node
// `npm start`: runs the ingest service on embedded defaults (SQLite in ./data, MQTT on
// 1883, HTTP on 8080). Configure it with INGEST_* variables (see the README).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

const main = 'apps/ingest/dist/main.js';
if (!existsSync(main)) {
  console.error('The ingest service is not built yet: run `npm run setup` first.');
  process.exit(1);
}
// The node flags the ingest is measured and shipped with (the container image runs the same).
const { nodeFlags } = JSON.parse(readFileSync('apps/ingest/package.json', 'utf8')).outpost;
const child = spawn(process.execPath, ['--enable-source-maps', ...nodeFlags, main], {
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
