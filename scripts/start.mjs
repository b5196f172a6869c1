#!/usr/bin/env node
// `npm start`: runs the ingest service on embedded defaults (SQLite in ./data, MQTT on
// 1883, HTTP on 8080). Configure it with INGEST_* variables (see the README).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

const main = 'apps/ingest/dist/main.js';
if (!existsSync(main)) {
  console.error('The ingest service is not built yet: run `npm run setup` first.');
  process.exit(1);
}
const child = spawn(process.execPath, ['--enable-source-maps', main], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
