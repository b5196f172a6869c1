import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startIngest } from '@outpost/test-kit/ingest';
import { startIngestCluster } from '@outpost/test-kit/ingest-cluster';
import { startMosquitto } from '@outpost/test-kit/mosquitto';
import { startPostgres } from '@outpost/test-kit/postgres';
import { startRedis } from '@outpost/test-kit/redis';
import {
  startVictoriaMetrics,
  type VictoriaMetricsHandle,
} from '@outpost/test-kit/victoria-metrics';
import { Child } from './child.js';
import {
  AdminApi,
  enrollDevice,
  type GatewayPlan,
  gatewayPlans,
  METRICS,
  mapLimit,
  READINGS_PER_BATCH,
} from './fleet.js';
import type {
  FromGenerator,
  GeneratorGateway,
  LatencySummary,
  ToGenerator,
} from './load-messages.js';
import type { FromPeer, ToPeer } from './peer-subscriber.js';
import { CpuMeter, diffCpu, threadCpuMs } from './proc-stats.js';
import { type ProfileSummary, summarizeProfile } from './profile.js';
import { type BenchTable, type Cell, round } from './results.js';

/**
 * Readings per second end to end (the issue's benchmark): N gateways publish pre-signed
 * 100-record batches at QoS 1 with a bounded window per connection, and every reading is
 * then counted in VictoriaMetrics. Two sides, one after the other, against one store:
 *
 * - outpost: the built ingest as a process (aedes, PUBACK after the durable outbox commit,
 *   outbox writer to the store over the InfluxDB v2 write API);
 * - peer: what a user would build by hand — mosquitto, and an mqtt.js subscriber that
 *   parses unsigned SenML batches and writes with the official client's Point + WriteApi.
 *
 * Per side: acked readings/s (first PUBLISH → last PUBACK), stored readings/s (first
 * PUBLISH → every reading countable in the store, polled), server CPU per reading (the
 * ingest; mosquitto + subscriber for the peer), the store's and the generators' CPU apart,
 * and how busy the whole machine was. Never asserts anything.
 */

/**
 * `cluster-N`: N ingest replicas in cluster mode (Redis + PostgreSQL) behind a local TCP
 * balancer, against the same store; server CPU then counts the replicas, Redis and
 * PostgreSQL.
 */
export type Side = 'outpost' | 'peer' | `cluster-${number}`;

export function parseSide(text: string): Side {
  if (text === 'outpost' || text === 'peer') return text;
  const m = /^cluster-([1-9])$/.exec(text);
  if (m) return `cluster-${Number(m[1])}`;
  throw new Error(`unknown side ${text}: outpost, peer or cluster-<1..9>`);
}

export interface E2eOptions {
  gateways: number;
  /** Load generator processes; gateways are dealt among them. */
  generators: number;
  /** Unacknowledged publishes per connection. */
  window: number;
  durationS: number;
  /**
   * Readings prepared per side before the clock starts (the pool bounds memory and signing
   * time); a side that publishes them all before the deadline ends early.
   */
  poolReadings: number;
  sides: Side[];
  /** node --cpu-prof on the ingest; the summary covers the load window. */
  profile: boolean;
  /** Give up waiting for the store after this long without progress. */
  stallS: number;
}

export interface SideResult {
  side: Side;
  readingsAcked: number;
  readingsStored: number;
  complete: boolean;
  ackSeconds: number;
  storeSeconds: number;
  ackedPerS: number;
  storedPerS: number;
  /** Server CPU µs per stored reading, over first publish → stored. */
  serverCpuUsPerReading: number;
  /** Same, split by process (peer) or by thread group (outpost). */
  serverCpuSplit: Record<string, number>;
  storeCpuUsPerReading: number;
  generatorCpuUsPerReading: number;
  /** CPU cores the server used while publishing (1 = one full core). */
  serverCoresWhileAcking: number;
  machineBusyWhileAcking: number;
  machineBusyWhileStoring: number;
  /** Each server process's main thread while acking: shares of running and of waiting for a CPU. */
  mainThreadWhileAcking: Record<string, { running: number; waitingForCpu: number }>;
  loadAverage: [number, number, number];
  latencyMs: LatencySummary;
  payloadBytes: number;
  prepareSeconds: number;
  exhaustedGateways: number;
  errors: string[];
  server: Record<string, number>;
  profile?: ProfileSummary;
}

const METRIC_NAMES = METRICS.map(([m]) => m).join('|');
const PEER_PREFIX = 'peer_';
const OUTPOST_SELECTOR = `{__name__=~"(${METRIC_NAMES})_value"}`;
const selectorOf = (side: Side): string =>
  side === 'peer' ? `{__name__=~"${PEER_PREFIX}(${METRIC_NAMES})_value"}` : OUTPOST_SELECTOR;

const now = () => performance.timeOrigin + performance.now();

export async function runE2e(options: E2eOptions): Promise<SideResult[]> {
  const vm = await startVictoriaMetrics({ args: ['-dedup.minScrapeInterval=1ms'] });
  const results: SideResult[] = [];
  try {
    for (const [i, side] of options.sides.entries()) {
      if (i > 0) await sleep(3_000);
      console.log(`[bench] e2e ${side}: ${options.gateways} gateways, ${options.durationS} s`);
      // Each side has the store to itself: the outpost sides share series names.
      if (i > 0 && side !== 'peer') await deleteSeries(vm, OUTPOST_SELECTOR);
      results.push(
        side === 'outpost'
          ? await runOutpost(vm, options)
          : side === 'peer'
            ? await runPeer(vm, options)
            : await runCluster(vm, options, side),
      );
    }
  } finally {
    await vm.stop();
  }
  return results;
}

function boot(): string {
  return randomBytes(9).toString('base64url');
}

/** Batches per gateway so the side can publish `poolReadings` in all. */
function batchesPerGateway(options: E2eOptions): number {
  return Math.max(1, Math.ceil(options.poolReadings / READINGS_PER_BATCH / options.gateways));
}

async function runOutpost(vm: VictoriaMetricsHandle, options: E2eOptions): Promise<SideResult> {
  const profileDir = options.profile ? mkdtempSync(join(tmpdir(), 'outpost-prof-')) : undefined;
  const ingest = await startIngest({
    env: {
      INGEST_INFLUX_URL: vm.url,
      INGEST_INFLUX_API: 'v2',
      INGEST_INFLUX_BUCKET: 'outpost',
      INGEST_LOG_LEVEL: 'warn',
      ...(profileDir
        ? {
            NODE_OPTIONS: `--import=${new URL('./cpu-profiler.js', import.meta.url).href}`,
            OUTPOST_BENCH_PROFILE_DIR: profileDir,
          }
        : {}),
    },
  });
  let failed = true;
  let result: SideResult;
  try {
    const api = new AdminApi(ingest.url, ingest.adminToken);
    const gateways = await enrollGateways(api, options);
    const pid = ingest.process.pid!;
    let threadsBefore: Record<string, number> = {};
    let threadsAfter: Record<string, number> = {};
    result = await runLoad(vm, options, {
      side: 'outpost',
      brokerUrl: ingest.mqttUrl,
      gateways,
      servers: { ingest: pid },
      onStart: () => {
        threadsBefore = threadCpuMs(pid);
        if (profileDir) writeFileSync(join(profileDir, 'start'), '');
      },
      onStored: () => {
        threadsAfter = threadCpuMs(pid);
        if (profileDir) writeFileSync(join(profileDir, 'stop'), '');
      },
      pending: async () => {
        const m = await api.metrics();
        return (m.get('outpost_ingest_outbox_pending') ?? 0) > 0;
      },
    });
    const split = diffCpu(threadsBefore, threadsAfter);
    result.serverCpuSplit = perReading(split, result.readingsStored);
    result.server = pickMetrics(await api.metrics());
    if (profileDir) await waitForFile(join(profileDir, 'ingest.cpuprofile'), 30_000);
    failed = false;
  } finally {
    await ingest.stop({ keepLogs: failed });
  }
  if (profileDir) {
    const summary = summarizeProfile(profileDir);
    if (summary) result.profile = summary;
    else rmSync(profileDir, { recursive: true, force: true });
  }
  return result;
}

/** Enrolls the bench's gateways and imports their children; returns what generators need. */
async function enrollGateways(api: AdminApi, options: E2eOptions): Promise<GeneratorGateway[]> {
  const plans = gatewayPlans(options.gateways, 'gw');
  const enrolled = await mapLimit(plans, 4, (p) =>
    enrollDevice(api, p.id, { kind: 'gateway', tags: { site: 'bench' } }),
  );
  await api.request(
    'POST',
    '/api/v1/devices/import',
    plans.flatMap((p) =>
      p.children.map((id, c) => ({ id, gateway: p.id, tags: { room: `r${c}` } })),
    ),
    { expect: 200 },
  );
  return plans.map((p, i) => ({
    ...p,
    password: enrolled[i]!.password,
    privateJwk: enrolled[i]!.privateJwk,
    boot: boot(),
  }));
}

async function runCluster(
  vm: VictoriaMetricsHandle,
  options: E2eOptions,
  side: `cluster-${number}`,
): Promise<SideResult> {
  const replicaCount = Number(side.slice('cluster-'.length));
  const redis = await startRedis();
  const postgres = await startPostgres();
  let failed = true;
  try {
    const databaseUrl = await postgres.createDatabase('outpost_bench');
    const cluster = await startIngestCluster({
      replicas: replicaCount,
      redisUrl: redis.url,
      databaseUrl,
      env: {
        INGEST_INFLUX_URL: vm.url,
        INGEST_INFLUX_API: 'v2',
        INGEST_INFLUX_BUCKET: 'outpost',
        INGEST_LOG_LEVEL: 'warn',
      },
    });
    try {
      const apis = cluster.replicas.map((r) => new AdminApi(r.url, cluster.adminToken));
      const api = apis[0]!;
      const gateways = await enrollGateways(api, options);
      const servers: Record<string, number> = {
        redis: redis.process.pid!,
        postgres: postgres.process.pid!,
      };
      for (const [i, r] of cluster.replicas.entries()) servers[`ingest-${i}`] = r.process.pid!;
      const result = await runLoad(vm, options, {
        side,
        brokerUrl: cluster.mqtt.url('mqtt'),
        gateways,
        servers,
        pending: async () => {
          for (const a of apis) {
            const m = await a.metrics();
            if ((m.get('outpost_ingest_outbox_pending') ?? 0) > 0) return true;
          }
          return false;
        },
      });
      const perReplica: Record<string, number> = {};
      for (const [i, a] of apis.entries()) {
        perReplica[`ingest-${i} readings`] =
          (await a.metrics()).get('outpost_ingest_readings_total') ?? 0;
      }
      result.server = perReplica;
      failed = false;
      return result;
    } finally {
      await cluster.stop({ keepLogs: failed });
    }
  } finally {
    await postgres.stop({ keepLogs: failed });
    await redis.stop({ keepLogs: failed });
  }
}

async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = now() + timeoutMs;
  while (!existsSync(path) && now() < deadline) await sleep(100);
}

async function runPeer(vm: VictoriaMetricsHandle, options: E2eOptions): Promise<SideResult> {
  // Unbounded queue for the subscriber: by default (1,000) mosquitto drops what a slow
  // subscriber has not taken, and the store's count could never be complete.
  const mosquitto = await startMosquitto({ config: ['max_queued_messages 0'] });
  const subscriber = Child.start<ToPeer, FromPeer>('peer-subscriber', './peer-subscriber.js');
  let failed = true;
  try {
    subscriber.send({
      type: 'start',
      brokerUrl: mosquitto.url,
      storeUrl: vm.url,
      bucket: 'peer',
      prefix: PEER_PREFIX,
    });
    await subscriber.next('ready', 30_000);
    const gateways: GeneratorGateway[] = gatewayPlans(options.gateways, 'gw').map(
      (p: GatewayPlan) => ({ ...p, boot: boot() }),
    );
    const flush = async () => {
      subscriber.send({ type: 'flush' });
      return subscriber.next('flushed', 60_000);
    };
    const result = await runLoad(vm, options, {
      side: 'peer',
      brokerUrl: mosquitto.url,
      gateways,
      servers: { mosquitto: mosquitto.process.pid!, subscriber: subscriber.pid },
      pending: async () => {
        const stats = await flush();
        return stats.pointsWritten < stats.points;
      },
    });
    const { type: _, ...stats } = await flush();
    result.server = stats;
    failed = false;
    return result;
  } finally {
    await subscriber.stop({ type: 'stop' });
    await mosquitto.stop({ keepLogs: failed });
  }
}

interface LoadSpec {
  side: Side;
  brokerUrl: string;
  gateways: GeneratorGateway[];
  /** Processes whose CPU is the side's server cost. */
  servers: Record<string, number>;
  /** Whether the server still holds readings it has not written. */
  pending: () => Promise<boolean>;
  onStart?: () => void;
  onStored?: () => void;
}

async function runLoad(
  vm: VictoriaMetricsHandle,
  options: E2eOptions,
  spec: LoadSpec,
): Promise<SideResult> {
  const generators = Array.from(
    { length: Math.min(options.generators, spec.gateways.length) },
    (_, i) => Child.start<ToGenerator, FromGenerator>(`generator-${i + 1}`, './load-generator.js'),
  );
  try {
    const perGateway = batchesPerGateway(options);
    const t0Ms = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
    for (const [i, g] of generators.entries()) {
      g.send({
        type: 'prepare',
        brokerUrl: spec.brokerUrl,
        gateways: spec.gateways.filter((_, k) => k % generators.length === i),
        batchesPerGateway: perGateway,
        t0Ms,
        window: options.window,
      });
    }
    const ready = await Promise.all(generators.map((g) => g.next('ready', 600_000)));
    // Let connection set-up and the prepare phase's garbage settle before measuring.
    await sleep(1_000);

    const pids: Record<string, number> = { ...spec.servers, store: vm.process.pid! };
    for (const g of generators) pids[g.name] = g.pid;
    const meter = new CpuMeter(pids);
    spec.onStart?.();
    const durationMs = options.durationS * 1000;
    for (const g of generators) g.send({ type: 'start', durationMs });
    const done = await Promise.all(generators.map((g) => g.next('done', durationMs + 300_000)));
    const acking = meter.since();

    const readingsAcked = done.reduce((a, d) => a + d.readingsAcked, 0);
    const firstPublishAt = Math.min(...done.map((d) => d.firstPublishAt));
    const lastAckAt = Math.max(...done.map((d) => d.lastAckAt));
    const stored = await waitStored(
      vm,
      selectorOf(spec.side),
      readingsAcked,
      options,
      spec.pending,
    );
    spec.onStored?.();
    const storing = meter.since();

    const ackSeconds = (lastAckAt - firstPublishAt) / 1000;
    const storeSeconds = (stored.at - firstPublishAt) / 1000;
    const serverMs = sum(Object.keys(spec.servers).map((k) => storing.processMs[k] ?? 0));
    const generatorMs = sum(generators.map((g) => acking.processMs[g.name] ?? 0));
    return {
      side: spec.side,
      readingsAcked,
      readingsStored: stored.count,
      complete: stored.count === readingsAcked,
      ackSeconds,
      storeSeconds,
      ackedPerS: readingsAcked / ackSeconds,
      storedPerS: stored.count / storeSeconds,
      serverCpuUsPerReading: (serverMs * 1000) / Math.max(1, stored.count),
      serverCpuSplit: perReading(
        Object.fromEntries(Object.keys(spec.servers).map((k) => [k, storing.processMs[k] ?? 0])),
        stored.count,
      ),
      storeCpuUsPerReading: ((storing.processMs.store ?? 0) * 1000) / Math.max(1, stored.count),
      generatorCpuUsPerReading: (generatorMs * 1000) / Math.max(1, readingsAcked),
      serverCoresWhileAcking:
        sum(Object.keys(spec.servers).map((k) => acking.processMs[k] ?? 0)) / (acking.wallS * 1000),
      machineBusyWhileAcking: acking.machineBusy,
      mainThreadWhileAcking: Object.fromEntries(
        Object.keys(spec.servers).map((k) => [
          k,
          {
            running: round(acking.mainThread[k]?.running ?? 0, 3),
            waitingForCpu: round(acking.mainThread[k]?.waitingForCpu ?? 0, 3),
          },
        ]),
      ),
      machineBusyWhileStoring: storing.machineBusy,
      loadAverage: storing.load,
      latencyMs: worstLatency(done.map((d) => d.latencyMs)),
      payloadBytes: Math.round(sum(ready.map((r) => r.payloadBytes)) / ready.length),
      prepareSeconds: Math.max(...ready.map((r) => r.prepareMs)) / 1000,
      exhaustedGateways: sum(done.map((d) => d.exhausted)),
      errors: done.flatMap((d) => d.errors),
      server: {},
    };
  } finally {
    await Promise.all(generators.map((g) => g.stop({ type: 'stop' })));
  }
}

/** Polls the store until it holds `expected` readings, or nothing moves for `stallS`. */
async function waitStored(
  vm: VictoriaMetricsHandle,
  selector: string,
  expected: number,
  options: E2eOptions,
  pending: () => Promise<boolean>,
): Promise<{ count: number; at: number }> {
  let count = -1;
  let changedAt = now();
  for (;;) {
    const seen = await countStored(vm, selector);
    const at = now();
    if (seen >= expected) return { count: seen, at };
    if (seen !== count) {
      count = seen;
      changedAt = at;
    } else if (at - changedAt > options.stallS * 1000 && !(await pending())) {
      return { count, at: changedAt };
    }
    await sleep(200);
  }
}

async function deleteSeries(vm: VictoriaMetricsHandle, selector: string): Promise<void> {
  const query = new URLSearchParams({ 'match[]': selector });
  const res = await fetch(`${vm.url}/api/v1/admin/tsdb/delete_series?${query}`, { method: 'POST' });
  if (!res.ok) throw new Error(`delete_series answered ${res.status}`);
  await vm.flush();
}

/** Distinct (series, millisecond) samples: `-dedup.minScrapeInterval=1ms` counts a rewrite once. */
export async function countStored(vm: VictoriaMetricsHandle, selector: string): Promise<number> {
  await vm.flush();
  const query = new URLSearchParams({ query: `sum(count_over_time(${selector}[30d]))` });
  const res = await fetch(`${vm.url}/api/v1/query?${query}`);
  const body = (await res.json()) as {
    data?: { result?: { value: [number, string] }[] };
  };
  if (!res.ok) throw new Error(`query answered ${res.status}: ${JSON.stringify(body)}`);
  return Number(body.data?.result?.[0]?.value[1] ?? 0);
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function perReading(ms: Record<string, number>, readings: number): Record<string, number> {
  return Object.fromEntries(
    Object.entries(ms)
      .filter(([, v]) => v > 0)
      .map(([k, v]) => [k, round((v * 1000) / Math.max(1, readings), 2)]),
  );
}

function worstLatency(all: LatencySummary[]): LatencySummary {
  return {
    p50: Math.max(...all.map((l) => l.p50)),
    p90: Math.max(...all.map((l) => l.p90)),
    p99: Math.max(...all.map((l) => l.p99)),
    max: Math.max(...all.map((l) => l.max)),
  };
}

const SERVER_METRICS = [
  'outpost_ingest_readings_total',
  'outpost_ingest_store_points_written_total',
  'outpost_ingest_outbox_pending',
  'outpost_ingest_batches_total{outcome="accepted"}',
  'outpost_ingest_batches_total{outcome="duplicate"}',
  'outpost_ingest_batches_total{outcome="rejected"}',
  'outpost_ingest_store_write_seconds_count{outcome="ok"}',
  'outpost_ingest_store_write_seconds_sum{outcome="ok"}',
];

function pickMetrics(all: Map<string, number>): Record<string, number> {
  return Object.fromEntries(SERVER_METRICS.filter((k) => all.has(k)).map((k) => [k, all.get(k)!]));
}

/** `a ÷ b` for the rates and the CPU cost; the other columns stay empty. */
function ratioRow(a: SideResult, b: SideResult): Cell[] {
  return [
    `${a.side} ÷ ${b.side}`,
    round(a.ackedPerS / b.ackedPerS, 2),
    round(a.storedPerS / b.storedPerS, 2),
    round(a.serverCpuUsPerReading / b.serverCpuUsPerReading, 2),
    ...Array<Cell>(8).fill(null),
  ];
}

/** The comparison table: one row per side, then outpost ÷ peer and the last ÷ first cluster. */
export function e2eTable(results: SideResult[], options: E2eOptions, uptime: string): BenchTable {
  const rows: Cell[][] = results.map((r) => [
    r.side,
    Math.round(r.ackedPerS),
    Math.round(r.storedPerS),
    round(r.serverCpuUsPerReading, 2),
    round(r.storeCpuUsPerReading, 2),
    round(r.generatorCpuUsPerReading, 2),
    round(r.serverCoresWhileAcking, 2),
    `${Math.round(r.machineBusyWhileAcking * 100)}%`,
    round(r.latencyMs.p50, 1),
    round(r.latencyMs.p99, 1),
    r.readingsAcked,
    r.complete ? 'yes' : `no (${r.readingsStored.toLocaleString('en')})`,
  ]);
  const ours = results.find((r) => r.side === 'outpost');
  const peer = results.find((r) => r.side === 'peer');
  if (ours && peer) rows.push(ratioRow(ours, peer));
  const clusters = results.filter((r) => r.side.startsWith('cluster-'));
  if (clusters.length >= 2) rows.push(ratioRow(clusters.at(-1)!, clusters[0]!));
  const notes = [
    `${options.gateways} gateways × ${READINGS_PER_BATCH}-record batches, QoS 1, window ${options.window} per connection, ${options.durationS} s per side, ${options.generators} generator processes; goal ≥ 200,000 stored readings/s and ≥ 1.5× the peer.`,
    'acked = first PUBLISH → last PUBACK; stored = first PUBLISH → every reading countable in VictoriaMetrics (polled every 0.2 s).',
    'server CPU = ingest process (outpost) or mosquitto + subscriber (peer), per stored reading; the store (VictoriaMetrics) and the generators are counted apart.',
    'The peer acknowledges before anything is durable (mosquitto has no persistence; the WriteApi retries from memory); outpost acknowledges after an fsynced SQLite commit.',
    `machine: ${uptime}`,
  ];
  if (clusters.length > 0) {
    notes.push(
      'cluster-N: N replicas (Redis broker state and fan-out, PostgreSQL registry) behind one local TCP balancer on this machine; server CPU counts the replicas, Redis and PostgreSQL. "machine busy" near 100% means the replicas share saturated cores, so the ratio measures overhead, not scale.',
    );
  }
  for (const r of results) {
    if (r.errors.length > 0) notes.push(`${r.side} errors: ${r.errors.slice(0, 3).join('; ')}`);
    if (r.exhaustedGateways > 0)
      notes.push(
        `${r.side}: ${r.exhaustedGateways} gateways sent their whole pool (${options.poolReadings.toLocaleString('en')} readings per side) before the deadline; its acked rate is then bounded by the generators, its stored rate is not.`,
      );
  }
  return {
    kind: 'table',
    title: 'ingest: readings/s end to end (QoS 1 → VictoriaMetrics)',
    columns: [
      'side',
      'acked readings/s',
      'stored readings/s',
      'server CPU µs/reading',
      'store CPU µs/reading',
      'generator CPU µs/reading',
      'server cores (acking)',
      'machine busy',
      'ack p50 ms',
      'ack p99 ms',
      'readings',
      'all stored',
    ],
    rows,
    notes,
    details: { options, results },
  };
}
