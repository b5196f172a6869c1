import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import Database from 'better-sqlite3';
import { packReadings } from '../src/outbox/pack.js';
import { SqliteOutbox } from '../src/outbox/sqlite-outbox.js';
import {
  type AgentProcess,
  enrollGateway,
  ingestMetric,
  sleep,
  startAgent,
} from '../test/support/agent-harness.js';

/**
 * Whole-stack benches of the agent (processes: ingest, agent, firmware-sim devices on socat
 * ptys). Each writes `bench-results/edge-agent-<name>.json` and prints it. Never asserts.
 *
 *   npm run build && npx tsc -p bench/tsconfig.json
 *   node bench/dist/bench/agent-load.js carry  [--duration 60] [--devices 10] [--rate 100]
 *   node bench/dist/bench/agent-load.js drain  [--hours 1] [--rate 1000]
 *   node bench/dist/bench/agent-load.js outage [--outage 600] [--devices 10] [--rate 100]
 *
 * carry:  RSS and throughput while 10 serial devices send 1,000 readings/s in all, and
 *         whether every reading sent was stored.
 * drain:  a backlog of `hours` × `rate` readings written into the outbox (as the agent
 *         writes it: 500-record SenML batches, an hour old), then the time the agent takes
 *         to have all of it acknowledged by a local ingest, and to see it in the store.
 * outage: the ingest down for `outage` seconds (a real 10 minutes by default) while the
 *         devices keep sending; afterwards every reading sent must be stored exactly once.
 */

const ROOT = dirname(createRequire(import.meta.url).resolve('@outpost/edge-agent/package.json'));
const RESULTS = join(ROOT, '..', '..', 'bench-results');
const SIM_MAIN = join(
  dirname(createRequire(import.meta.url).resolve('@outpost/firmware-sim/package.json')),
  'dist',
  'main.js',
);
const GW = 'gw-bench';
/** The agent runs as the systemd unit runs it: its Node flags and memory settings. */
const UNIT = readFileSync(join(ROOT, '../../deploy/edge/outpost-agent.service'), 'utf8');
/** The flags between `node` and the launcher in `ExecStart=`. */
const NODE_ARGS_OF_UNIT = (/^ExecStart=\S*node((?:\s+--\S+)*)\s/m.exec(UNIT)?.[1] ?? '').trim();
/** `MALLOC_*` and `UV_*` settings of `Environment=`. */
const ENV_OF_UNIT = [...UNIT.matchAll(/\b((?:MALLOC|UV)_[A-Z_]+=\S+)/g)].map((m) => m[1]).join(' ');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '60' },
    devices: { type: 'string', default: '10' },
    rate: { type: 'string', default: '100' },
    hours: { type: 'string', default: '1' },
    outage: { type: 'string', default: '600' },
    window: { type: 'string', default: '16' },
    /** Node flags of the agent; the default is what deploy/edge/outpost-agent.service uses. */
    'node-args': { type: 'string', default: NODE_ARGS_OF_UNIT },
    /** Environment of the agent; the default is the unit's `Environment=`. */
    env: { type: 'string', default: ENV_OF_UNIT },
  },
});
const nodeArgs = values['node-args'].split(' ').filter((a) => a !== '');
const agentEnv = Object.fromEntries(
  values.env
    .split(' ')
    .filter((a) => a.includes('='))
    .map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]),
);

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * The resident set split by where it comes from (smaps_rollup): pages of files shared with
 * other processes (chiefly the node binary's own code) and memory private to the agent.
 */
function memoryParts(pid: number): { privateBytes: number; sharedFileBytes: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return {
    privateBytes: kb('Private_Dirty') + kb('Private_Clean'),
    sharedFileBytes: kb('Shared_Clean'),
  };
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function storedCount(ingest: IngestHandle): number {
  const db = new Database(join(ingest.dataDir, 'telemetry.db'), { readonly: true });
  try {
    return db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM points').get()!.n;
  } catch {
    return 0;
  } finally {
    db.close();
  }
}

/** Waits until the store's count stops changing (the ingest drained what it accepted). */
async function settledCount(
  ingest: IngestHandle,
  atLeast: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    const n = storedCount(ingest);
    if (n >= atLeast || (n === last && n > 0) || Date.now() > deadline) return n;
    last = n;
    await sleep(2000);
  }
}

function write(name: string, result: Record<string, unknown>): void {
  mkdirSync(RESULTS, { recursive: true });
  const path = join(RESULTS, `edge-agent-${name}.json`);
  // A two-column table for scripts/bench-report.mjs; the whole result stays in `details`.
  const rows = Object.entries(result)
    .filter(([, v]) => ['number', 'string', 'boolean'].includes(typeof v))
    .map(([k, v]) => [k, typeof v === 'boolean' ? String(v) : v]);
  const table = {
    kind: 'table',
    title: `edge agent: ${name}`,
    columns: ['measure', 'value'],
    rows,
    notes: [],
    details: result,
  };
  writeFileSync(path, `${JSON.stringify(table, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  console.log(`wrote ${path}`);
}

const MiB = 2 ** 20;

interface Fleet {
  pairs: PtyPairHandle[];
  sims: ManagedProcess[];
  devices: string[];
}

async function startFleet(work: WorkDir, devices: string[], rate: number, agentSources: boolean) {
  const fleet: Fleet = { pairs: [], sims: [], devices };
  for (const _ of devices) fleet.pairs.push(await ptyPair({ workDir: work.path }));
  const sources = devices.map((device, i) => ({
    serial: { port: fleet.pairs[i]!.appPath, device, parser: 'outpost-line' },
  }));
  const startSims = () => {
    for (const [i, device] of devices.entries()) {
      fleet.sims.push(
        ManagedProcess.start({
          name: device,
          command: process.execPath,
          args: [
            SIM_MAIN,
            'serial-device',
            '--port',
            fleet.pairs[i]!.devicePath,
            '--id',
            device,
            '--metrics',
            't=sine:20:5:60,noise=0.1',
            '--rate',
            String(rate),
            '--seed',
            String(i + 1),
            '--wait-for-id',
            '--stats-file',
            work.join(`${device}.json`),
          ],
          logPath: work.join(`${device}.log`),
        }),
      );
    }
  };
  void agentSources;
  return { fleet, sources, startSims };
}

async function stopFleet(work: WorkDir, fleet: Fleet): Promise<number> {
  for (const sim of fleet.sims) await sim.stop();
  let sent = 0;
  for (const d of fleet.devices) {
    const stats = JSON.parse(readFileSync(work.join(`${d}.json`), 'utf8')) as {
      devices: Record<string, { sent: Record<string, number> }>;
    };
    sent += Object.values(stats.devices[d]!.sent).reduce((n, v) => n + v, 0);
  }
  for (const pair of fleet.pairs) await pair.stop();
  return sent;
}

/** RSS and CPU of a process sampled every second while `during` runs. */
async function sample<T>(pid: number, during: () => Promise<T>) {
  const rss: number[] = [];
  const parts: { privateBytes: number; sharedFileBytes: number }[] = [];
  const cpu0 = cpuMs(pid);
  const t0 = Date.now();
  const timer = setInterval(() => {
    try {
      rss.push(rssBytes(pid));
      parts.push(memoryParts(pid));
    } catch {
      // exited
    }
  }, 1000);
  try {
    const result = await during();
    return {
      result,
      rssMaxMiB: Math.max(...rss) / MiB,
      rssMeanMiB: rss.reduce((a, b) => a + b, 0) / Math.max(1, rss.length) / MiB,
      privateMaxMiB: Math.max(...parts.map((p) => p.privateBytes)) / MiB,
      sharedFileMaxMiB: Math.max(...parts.map((p) => p.sharedFileBytes)) / MiB,
      cpuPercent: ((cpuMs(pid) - cpu0) / (Date.now() - t0)) * 100,
    };
  } finally {
    clearInterval(timer);
  }
}

async function carry(): Promise<void> {
  const durationS = Number(values.duration);
  const rate = Number(values.rate);
  const devices = Array.from({ length: Number(values.devices) }, (_, i) => `sim-${i + 1}`);
  const work = await makeWorkDir('bench-carry');
  const ingest = await startIngest();
  let agent: AgentProcess | undefined;
  try {
    await enrollGateway(ingest, work.join('data'), GW, devices);
    const { fleet, sources, startSims } = await startFleet(work, devices, rate, true);
    agent = await startAgent({
      dir: work.path,
      dataDir: work.join('data'),
      overrides: { sources, log: { level: 'info' }, batch: { maxRecords: 500, maxAge: '2s' } },
      nodeArgs,
      env: agentEnv,
    });
    await waitFor(async () => (await agent!.metric('outpost_agent_port_open')) === devices.length, {
      what: 'ports open',
    });
    startSims();
    // Warm up, then measure a steady state.
    await sleep(5000);
    const acked0 = (await agent.metric('outpost_agent_uplink_records_acked_total')) ?? 0;
    const measured = await sample(agent.process.pid!, async () => {
      await sleep(durationS * 1000);
      // With `--node-args "... --heapsnapshot-signal=SIGUSR2"`: a heap snapshot under load.
      if (nodeArgs.some((a) => a.startsWith('--heapsnapshot-signal'))) {
        agent!.process.signal('SIGUSR2');
        await sleep(3000);
      }
    });
    const acked1 = (await agent.metric('outpost_agent_uplink_records_acked_total')) ?? 0;
    const heapUsedMiB =
      ((await agent.metric('outpost_agent_nodejs_heap_size_used_bytes')) ?? 0) / MiB;
    const heapTotalMiB =
      ((await agent.metric('outpost_agent_nodejs_heap_size_total_bytes')) ?? 0) / MiB;
    const externalMiB =
      ((await agent.metric('outpost_agent_nodejs_external_memory_bytes')) ?? 0) / MiB;
    const threads = Number(
      /^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${agent.process.pid}/status`, 'utf8'))?.[1],
    );
    const sent = await stopFleet(work, fleet);
    await sleep(3000); // the open batch (maxAge 2 s) reaches the outbox
    await waitFor(async () => (await agent!.metric('outpost_agent_outbox_pending_records')) === 0, {
      what: 'outbox empty',
      timeoutMs: 60_000,
    }).catch(() => undefined);
    const outboxed =
      (await agent.metric('outpost_agent_readings_total', { outcome: 'outboxed' })) ?? 0;
    const ackedTotal = (await agent.metric('outpost_agent_uplink_records_acked_total')) ?? 0;
    const stored = await settledCount(ingest, sent, 60_000);
    const ingestAccepted = await ingestMetric(ingest, 'outpost_ingest_readings_total');
    write('carry', {
      devices: devices.length,
      readingsPerSecondOffered: devices.length * rate,
      durationS,
      ackedPerSecond: (acked1 - acked0) / durationS,
      rssMaxMiB: measured.rssMaxMiB,
      rssMeanMiB: measured.rssMeanMiB,
      privateMaxMiB: measured.privateMaxMiB,
      sharedFileMaxMiB: measured.sharedFileMaxMiB,
      agentCpuPercent: measured.cpuPercent,
      heapUsedMiB,
      heapTotalMiB,
      externalMiB,
      threads,
      nodeArgs,
      env: agentEnv,
      sent,
      outboxed,
      acknowledged: ackedTotal,
      ingestAccepted,
      stored,
      nothingLost: outboxed === sent && ackedTotal === sent,
      goal: 'RSS <= 80 MB',
      note: 'stored < sent only where two readings of one device got the same millisecond (the store keys points by device, metric and time)',
    });
  } finally {
    await agent?.stop();
    await ingest.stop();
    await work.cleanup();
  }
}

async function drain(): Promise<void> {
  const hours = Number(values.hours);
  const devices = Array.from({ length: Number(values.devices) }, (_, i) => `sim-${i + 1}`);
  // 10 devices × 100 readings/s: the carry bench's load, an hour of it.
  const rate = devices.length * Number(values.rate);
  const total = Math.round(hours * 3600 * rate);
  const work = await makeWorkDir('bench-drain');
  const ingest = await startIngest();
  let agent: AgentProcess | undefined;
  try {
    const dataDir = work.join('data');
    await enrollGateway(ingest, dataDir, GW, devices);
    // The backlog, written as the agent writes it: 500-record batches, an hour old.
    const outbox = new SqliteOutbox({
      path: join(dataDir, 'outbox.db'),
      maxBytes: 4 * 2 ** 30,
      whenFull: 'reject-new',
      synchronous: 'normal',
    });
    const start = Date.now() - hours * 3600_000;
    const t0 = Date.now();
    let seq = 0;
    for (let first = 0; first < total; first += 500) {
      const n = Math.min(500, total - first);
      const readings = Array.from({ length: n }, (_, i) => {
        const k = first + i;
        return {
          deviceId: devices[k % devices.length]!,
          metric: 't',
          time: (start + (k * 1000) / rate) / 1000,
          value: Math.round((20 + 5 * Math.sin(k / 1000)) * 100) / 100,
          backfilled: false,
          clock: 'synced' as const,
        };
      });
      for (const pack of packReadings(readings, GW, 500)) {
        outbox.append({
          boot: 'benchBacklog1',
          seq: [seq, seq + pack.readings.length - 1],
          createdMs: start + (first * 1000) / rate,
          records: pack.readings.length,
          pack: pack.pack,
        });
        seq += pack.readings.length;
      }
    }
    const backlog = outbox.stats();
    outbox.close();
    console.log(
      `backlog: ${backlog.records} readings, ${(backlog.bytes / MiB).toFixed(1)} MiB, written in ${Date.now() - t0} ms`,
    );

    const started = Date.now();
    agent = await startAgent({
      dir: work.path,
      dataDir,
      overrides: { sources: [], log: { level: 'info' }, uplink: { window: Number(values.window) } },
      nodeArgs,
      env: agentEnv,
    });
    const pid = agent.process.pid!;
    const ingestCpu0 = cpuMs(ingest.process.pid!);
    let connectedAt = 0;
    const measured = await sample(pid, async () => {
      await waitFor(async () => (await agent!.metric('outpost_agent_uplink_connected')) === 1, {
        what: 'connected',
        intervalMs: 20,
      });
      connectedAt = Date.now();
      await waitFor(
        async () => (await agent!.metric('outpost_agent_outbox_pending_records')) === 0,
        {
          what: 'backlog acknowledged',
          timeoutMs: 3600_000,
          intervalMs: 100,
        },
      );
      return Date.now();
    });
    const ackedAt = measured.result;
    const ingestCpuPercent =
      ((cpuMs(ingest.process.pid!) - ingestCpu0) / (ackedAt - connectedAt)) * 100;
    await waitFor(() => storedCount(ingest) >= total, {
      what: 'backlog stored',
      timeoutMs: 3600_000,
      intervalMs: 500,
    });
    const storedAt = Date.now();
    const drainS = (ackedAt - connectedAt) / 1000;
    write('drain', {
      backlogReadings: total,
      backlogMiB: backlog.bytes / MiB,
      backlogBatches: backlog.pending,
      secondsToConnected: (connectedAt - started) / 1000,
      secondsToAcknowledged: drainS,
      drainReadingsPerSecond: total / drainS,
      secondsToStored: (storedAt - connectedAt) / 1000,
      storedReadingsPerSecond: total / ((storedAt - connectedAt) / 1000),
      nodeArgs,
      env: agentEnv,
      agentRssMaxMiB: measured.rssMaxMiB,
      agentCpuPercent: measured.cpuPercent,
      ingestCpuPercent,
      window: Number(values.window),
      goal: 'drain >= 50,000 readings/s against a local ingest',
      note: 'acknowledged = the ingest PUBACKed after its durable (fsynced) acceptance; stored = in its telemetry store',
    });
  } finally {
    await agent?.stop();
    await ingest.stop();
    await work.cleanup();
  }
}

async function outage(): Promise<void> {
  const outageS = Number(values.outage);
  const rate = Number(values.rate);
  const devices = Array.from({ length: Number(values.devices) }, (_, i) => `sim-${i + 1}`);
  const work = await makeWorkDir('bench-outage');
  const ingest = await startIngest();
  let agent: AgentProcess | undefined;
  try {
    await enrollGateway(ingest, work.join('data'), GW, devices);
    const { fleet, sources, startSims } = await startFleet(work, devices, rate, true);
    agent = await startAgent({
      dir: work.path,
      dataDir: work.join('data'),
      overrides: { sources, log: { level: 'info' } },
      nodeArgs,
      env: agentEnv,
    });
    await waitFor(async () => (await agent!.metric('outpost_agent_port_open')) === devices.length, {
      what: 'ports open',
    });
    startSims();
    await sleep(5000);
    await ingest.kill9();
    const down = Date.now();
    const measured = await sample(agent.process.pid!, () => sleep(outageS * 1000));
    const buffered = (await agent.metric('outpost_agent_outbox_pending_records')) ?? 0;
    await ingest.restart();
    const up = Date.now();
    await sleep(5000);
    const sent = await stopFleet(work, fleet);
    await sleep(3000); // the open batch reaches the outbox
    await waitFor(async () => (await agent!.metric('outpost_agent_outbox_pending_records')) === 0, {
      what: 'outbox empty',
      timeoutMs: 600_000,
    }).catch(() => undefined);
    const stored = await settledCount(ingest, sent, 600_000);
    const outboxed =
      (await agent.metric('outpost_agent_readings_total', { outcome: 'outboxed' })) ?? 0;
    const acknowledged = (await agent.metric('outpost_agent_uplink_records_acked_total')) ?? 0;
    write('outage', {
      outageS: (up - down) / 1000,
      readingsPerSecondOffered: devices.length * rate,
      bufferedAtRestart: buffered,
      rssMaxMiBDuringOutage: measured.rssMaxMiB,
      sent,
      outboxed,
      acknowledged,
      stored,
      duplicateBatchesRecognisedByIngest: await ingestMetric(
        ingest,
        'outpost_ingest_batches_total',
        {
          outcome: 'duplicate',
        },
      ),
      nothingLost: outboxed === sent && acknowledged === sent,
      note: 'stored < sent only where two readings of one device got the same millisecond (the store keys points by device, metric and time)',
    });
  } finally {
    await agent?.stop();
    await ingest.stop();
    await work.cleanup();
  }
}

const which = positionals.length > 0 ? positionals : ['carry', 'drain'];
for (const name of which) {
  if (name === 'carry') await carry();
  else if (name === 'drain') await drain();
  else if (name === 'outage') await outage();
  else throw new Error(`unknown bench ${name}: carry, drain or outage`);
}
