import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { startIngest } from '@outpost/test-kit/ingest';
import { Child } from './child.js';
import { AdminApi, type EnrolledDevice, enrollDevice, mapLimit } from './fleet.js';
import { CpuMeter, processOpenFiles, processRssBytes } from './proc-stats.js';
import { type BenchTable, round } from './results.js';
import type { FromSessions, ToSessions } from './session-clients.js';

/**
 * Authenticated MQTT sessions per ingest process (goal: 10,000). Enrolls the devices through
 * the API first, then ramps up in steps: each step opens `step` more sessions (CONNECT with
 * a device JWT, CONNACK 0) from a separate process and records the connect rate, CONNACK
 * latency, the ingest's RSS and CPU. Stops at the target or at the first step with refusals
 * or failures. Then holds every session for a while to measure the idle cost.
 */

export interface SessionsOptions {
  target: number;
  step: number;
  /** CONNECTs in flight at once. */
  concurrency: number;
  /** Source addresses 127.0.0.2 … (each has its own ephemeral port range). */
  sourceAddresses: number;
  enrollConcurrency: number;
  holdS: number;
}

export interface SessionStep {
  sessions: number;
  connectsPerS: number;
  connackP50Ms: number;
  connackP99Ms: number;
  rssMb: number;
  /** V8 heap in use (`nodejs_heap_size_used_bytes`); moves with garbage collections. */
  heapUsedMb: number;
  cpuMsPerConnect: number;
  refused: Record<string, number>;
  failed: string[];
}

export interface SessionsResult {
  reached: number;
  target: number;
  baselineRssMb: number;
  /** Least-squares slope of RSS and of heap in use over the steps. */
  rssKbPerSession: number;
  heapKbPerSession: number;
  enrolled: number;
  enrollPerS: number;
  steps: SessionStep[];
  /** Ingest CPU (share of one core) while holding every session, nothing else happening. */
  idleCores: number;
  /** Sessions the server counted (`outpost_ingest_mqtt_sessions`) at the end of the ramp. */
  serverSessions: number;
  droppedWhileHolding: number;
  fileLimits: { ingest: string; clients: string };
  sourceAddresses: number;
  stoppedBecause: string;
}

/** Raises a process's open-file limit (as root even the hard one) when it is below `need`. */
function ensureOpenFiles(pid: number, need: number): string {
  const { soft, hard } = processOpenFiles(pid);
  if (soft >= need) return `${soft}`;
  try {
    // Within the hard limit anyone may raise the soft one; beyond it only root.
    const hardLimit = hard >= need ? (Number.isFinite(hard) ? hard : 'unlimited') : need;
    execFileSync('prlimit', [`--pid=${pid}`, `--nofile=${need}:${hardLimit}`], {
      stdio: 'ignore',
    });
    const raised = processOpenFiles(pid);
    return `${raised.soft} (raised from ${soft})`;
  } catch {
    return `${soft} (could not raise to ${need})`;
  }
}

export async function runSessions(options: SessionsOptions): Promise<SessionsResult> {
  const ingest = await startIngest({ env: { INGEST_LOG_LEVEL: 'warn' } });
  const clients = Child.start<ToSessions, FromSessions>('session-clients', './session-clients.js');
  let failed = true;
  try {
    const pid = ingest.process.pid!;
    const need = options.target + 1024;
    const fileLimits = {
      ingest: ensureOpenFiles(pid, need),
      clients: ensureOpenFiles(clients.pid, need),
    };
    const api = new AdminApi(ingest.url, ingest.adminToken);

    console.log(`[bench] sessions: enrolling ${options.target} devices`);
    const enrollStarted = performance.now();
    const ids = Array.from(
      { length: options.target },
      (_, i) => `dev-${String(i + 1).padStart(5, '0')}`,
    );
    const devices: EnrolledDevice[] = await mapLimit(ids, options.enrollConcurrency, (id) =>
      enrollDevice(api, id),
    );
    const enrollPerS = devices.length / ((performance.now() - enrollStarted) / 1000);

    // Let the enrollment's garbage be collected before the baseline (V8 shrinks the heap
    // after a few idle seconds).
    await sleep(5_000);
    const baseline = processRssBytes(pid);
    const sources = Array.from({ length: options.sourceAddresses }, (_, i) => `127.0.0.${i + 2}`);
    const steps: SessionStep[] = [];
    let reached = 0;
    let stoppedBecause = 'target reached';
    while (reached < options.target) {
      const batch = devices.slice(reached, reached + options.step);
      const meter = new CpuMeter({ ingest: pid });
      clients.send({
        type: 'open',
        port: ingest.mqttPort,
        devices: batch.map((d) => ({ id: d.id, password: d.password })),
        concurrency: options.concurrency,
        sourceAddresses: sources,
        keepaliveS: 900,
      });
      const opened = await clients.next('opened', 600_000);
      const cpu = meter.since();
      reached = opened.open;
      await sleep(1_000);
      const rss = processRssBytes(pid);
      const heap = (await api.metrics()).get('outpost_ingest_nodejs_heap_size_used_bytes') ?? 0;
      steps.push({
        sessions: reached,
        connectsPerS: opened.accepted / opened.seconds,
        connackP50Ms: opened.connackMs.p50,
        connackP99Ms: opened.connackMs.p99,
        rssMb: rss / 2 ** 20,
        heapUsedMb: heap / 2 ** 20,
        cpuMsPerConnect: (cpu.processMs.ingest ?? 0) / Math.max(1, opened.accepted),
        refused: opened.refused,
        failed: opened.failed,
      });
      console.log(
        `[bench] sessions: ${reached} open, ${Math.round(opened.accepted / opened.seconds)} connects/s, RSS ${Math.round(rss / 2 ** 20)} MB`,
      );
      if (Object.keys(opened.refused).length > 0 || opened.failed.length > 0) {
        stoppedBecause = `refusals or failures at ${reached} sessions`;
        break;
      }
      if (opened.accepted === 0) {
        stoppedBecause = 'no session opened in a step';
        break;
      }
    }

    const hold = new CpuMeter({ ingest: pid });
    await sleep(options.holdS * 1000);
    const held = hold.since();
    const serverSessions = (await api.metrics()).get('outpost_ingest_mqtt_sessions') ?? 0;
    clients.send({ type: 'count' });
    const counted = await clients.next('counted', 30_000);
    clients.send({ type: 'close' });
    await clients.next('closed', 120_000);
    failed = false;
    return {
      reached,
      target: options.target,
      baselineRssMb: baseline / 2 ** 20,
      rssKbPerSession: slope(steps.map((s) => [s.sessions, s.rssMb * 1024])),
      heapKbPerSession: slope(steps.map((s) => [s.sessions, s.heapUsedMb * 1024])),
      enrolled: devices.length,
      enrollPerS,
      steps,
      idleCores: (held.processMs.ingest ?? 0) / (held.wallS * 1000),
      serverSessions,
      droppedWhileHolding: counted.dropped,
      fileLimits,
      sourceAddresses: sources.length,
      stoppedBecause,
    };
  } finally {
    await clients.stop({ type: 'stop' });
    await ingest.stop({ keepLogs: failed });
  }
}

/** Least-squares slope of y over x; 0 with fewer than two points. */
function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

export function sessionsTable(result: SessionsResult, uptime: string): BenchTable {
  return {
    kind: 'table',
    title: `ingest: authenticated MQTT sessions per process (reached ${result.reached.toLocaleString('en')} of ${result.target.toLocaleString('en')})`,
    columns: [
      'sessions',
      'connects/s',
      'CONNACK p50 ms',
      'CONNACK p99 ms',
      'ingest RSS MB',
      'heap used MB',
      'ingest CPU ms/connect',
    ],
    rows: result.steps.map((s) => [
      s.sessions,
      Math.round(s.connectsPerS),
      round(s.connackP50Ms, 1),
      round(s.connackP99Ms, 1),
      Math.round(s.rssMb),
      Math.round(s.heapUsedMb),
      round(s.cpuMsPerConnect, 2),
    ]),
    notes: [
      `memory per session (slope over the steps): RSS ${round(result.rssKbPerSession, 1)} kB, heap ${round(result.heapKbPerSession, 1)} kB, i.e. ${round((result.rssKbPerSession * 1000) / 1024, 1)} MB RSS per 1,000 sessions; RSS before any session ${Math.round(result.baselineRssMb)} MB.`,
      `holding all sessions idle costs ${round(result.idleCores * 100, 1)}% of a core; the server counted ${result.serverSessions.toLocaleString('en')} sessions; ${result.droppedWhileHolding} dropped.`,
      `${result.enrolled.toLocaleString('en')} devices enrolled through the API first (${Math.round(result.enrollPerS)}/s); stopped: ${result.stoppedBecause}.`,
      `open-file limits: ingest ${result.fileLimits.ingest}, clients ${result.fileLimits.clients}; client source addresses 127.0.0.2–${1 + result.sourceAddresses} (an ephemeral port range each).`,
      `machine: ${uptime}`,
    ],
    details: result,
  };
}
