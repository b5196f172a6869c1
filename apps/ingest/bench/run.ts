import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { type E2eOptions, e2eTable, parseSide, runE2e } from './e2e-throughput.js';
import { printTable, writeTable } from './results.js';
import { runSessions, sessionsTable } from './sessions.js';

/**
 * Whole-stack ingest benches; needs `apps/ingest/dist` (npm run build) and the Debian
 * services the test kit starts (victoria-metrics, mosquitto). Writes
 * `bench-results/ingest-e2e.json` and `bench-results/ingest-sessions.json`.
 *
 *   node bench/dist/run.js [e2e] [sessions] [--duration 20] [--gateways 20] [--window 8]
 *     [--generators 2] [--pool 8000000] [--sides outpost,peer,cluster-1,cluster-3] [--profile]
 *     [--sessions 10000] [--step 1000]
 */
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '20' },
    gateways: { type: 'string', default: '20' },
    window: { type: 'string', default: '8' },
    generators: { type: 'string', default: '2' },
    pool: { type: 'string', default: '8000000' },
    sides: { type: 'string', default: 'outpost,peer,cluster-1,cluster-3' },
    stall: { type: 'string', default: '20' },
    profile: { type: 'boolean', default: false },
    sessions: { type: 'string', default: '10000' },
    step: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '100' },
    sources: { type: 'string', default: '4' },
    hold: { type: 'string', default: '5' },
  },
});

const which = new Set(positionals.length > 0 ? positionals : ['e2e', 'sessions']);
const int = (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`not a positive integer: ${text}`);
  return n;
};

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/\s+/g, ' ');
  } catch {
    return 'uptime unavailable';
  }
}

if (which.has('e2e')) {
  const options: E2eOptions = {
    gateways: int(values.gateways),
    generators: int(values.generators),
    window: int(values.window),
    durationS: int(values.duration),
    poolReadings: int(values.pool),
    sides: values.sides.split(',').map(parseSide),
    profile: values.profile,
    stallS: int(values.stall),
  };
  const before = uptime();
  const results = await runE2e(options);
  const table = e2eTable(results, options, `before: ${before}; after: ${uptime()}`);
  printTable(table);
  for (const r of results) {
    const split = Object.entries(r.serverCpuSplit)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.log(
      `- ${r.side} server CPU µs/reading by ${r.side === 'outpost' ? 'thread' : 'process'}: ${split}`,
    );
    for (const [name, t] of Object.entries(r.mainThreadWhileAcking)) {
      console.log(
        `- ${r.side} ${name} main thread while acking: running ${Math.round(t.running * 100)}%, waiting for a CPU ${Math.round(t.waitingForCpu * 100)}%`,
      );
    }
    if (r.profile) {
      console.log(
        `- ${r.side} event-loop profile of the load (${Math.round(r.profile.busyMs)} ms busy, ${Math.round(r.profile.idleMs)} ms idle; ${r.profile.file}):`,
      );
      for (const a of r.profile.byArea) {
        console.log(`    ${(a.share * 100).toFixed(1).padStart(5)}%  ${a.name}`);
      }
      console.log('  top functions:');
      for (const f of r.profile.topFunctions) {
        console.log(`    ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}`);
      }
    }
  }
  console.log(`written: ${writeTable('ingest-e2e', table)}\n`);
}

if (which.has('sessions')) {
  const before = uptime();
  const result = await runSessions({
    target: int(values.sessions),
    step: int(values.step),
    concurrency: int(values.concurrency),
    sourceAddresses: int(values.sources),
    enrollConcurrency: 8,
    holdS: int(values.hold),
  });
  const table = sessionsTable(result, `before: ${before}; after: ${uptime()}`);
  printTable(table);
  console.log(`written: ${writeTable('ingest-sessions', table)}\n`);
}
