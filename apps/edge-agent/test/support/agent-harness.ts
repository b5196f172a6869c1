import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { IngestHandle } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { stringify } from 'yaml';
import { decodePack } from '../../src/outbox/downsample.js';
import { SqliteOutbox } from '../../src/outbox/sqlite-outbox.js';

/**
 * Runs the built agent (`dist/main.js`) as a process, as systemd would, against a real
 * ingest process, and reads what both hold: the ingest's API and telemetry.db, the agent's
 * metrics endpoint and outbox.db.
 */
export const AGENT_MAIN = join(
  dirname(createRequire(import.meta.url).resolve('@outpost/edge-agent/package.json')),
  'dist',
  'main.js',
);

export type Api = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; body: Record<string, unknown> }>;

export function apiOf(ingest: IngestHandle): Api {
  return async (method, path, body) => {
    const res = await fetch(`${ingest.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ingest.adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
}

/** Runs `outpost-agent <args>`; resolves with the exit code and output. */
export function runCli(
  args: readonly string[],
  env: Record<string, string> = {},
  main = AGENT_MAIN,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/**
 * Registers a gateway and its children at the ingest, then enrolls the gateway with the
 * agent's own `enroll` command (key pair made by the agent).
 */
export async function enrollGateway(
  ingest: IngestHandle,
  dataDir: string,
  gatewayId: string,
  children: readonly string[],
  /** The agent build to enroll with; the workspace's by default. */
  main = AGENT_MAIN,
): Promise<void> {
  const api = apiOf(ingest);
  const created = await api('POST', '/api/v1/enrollments', {
    deviceId: gatewayId,
    kind: 'gateway',
  });
  if (created.status !== 201) throw new Error(`enrollment: ${JSON.stringify(created.body)}`);
  if (children.length > 0) {
    const imported = await api(
      'POST',
      '/api/v1/devices/import',
      children.map((id) => ({ id, gateway: gatewayId })),
    );
    if (imported.status !== 200) throw new Error(`import: ${JSON.stringify(imported.body)}`);
  }
  const result = await runCli(
    [
      'enroll',
      '--server',
      ingest.url,
      '--token',
      created.body.token as string,
      '--data-dir',
      dataDir,
    ],
    {},
    main,
  );
  if (result.code !== 0) throw new Error(`outpost-agent enroll: ${result.stderr}`);
}

export interface AgentProcess {
  readonly process: ManagedProcess;
  readonly configPath: string;
  readonly metricsUrl: string;
  readonly sensorPort: number;
  /** Sum of a metric's samples whose labels include `labels`; undefined if absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

export interface AgentConfigOverrides {
  [key: string]: unknown;
}

/**
 * Writes agent.yaml (a local MQTT listener for the test's sensors, metrics on a free port,
 * quick batches, timesyncd ignored) merged with `overrides`, and starts the agent.
 */
export async function startAgent(options: {
  dir: string;
  dataDir: string;
  name?: string;
  overrides?: AgentConfigOverrides;
  sensorPort?: number;
  env?: Record<string, string>;
  /** Node flags, e.g. the V8 memory flags of the systemd unit. */
  nodeArgs?: string[];
}): Promise<AgentProcess> {
  const name = options.name ?? 'agent';
  const sensorPort = options.sensorPort ?? (await freePort());
  const metricsPort = await freePort();
  const config = {
    dataDir: options.dataDir,
    sources: [{ mqtt: { listen: `127.0.0.1:${sensorPort}`, allowAnonymous: true } }],
    batch: { maxRecords: 100, maxAge: '200ms' },
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    uplink: { backoff: { initial: '100ms', max: '1s' }, http: { fallback: false } },
    clock: { timesyncd: false },
    log: { level: 'debug' },
  };
  merge(config, options.overrides ?? {});
  const configPath = join(options.dir, `${name}.yaml`);
  await writeFile(configPath, stringify(config));
  const proc = ManagedProcess.start({
    name,
    command: process.execPath,
    args: [
      ...(options.nodeArgs ?? ['--enable-source-maps']),
      AGENT_MAIN,
      'run',
      '--config',
      configPath,
    ],
    logPath: join(options.dir, `${name}.log`),
    env: { PATH: process.env.PATH ?? '', ...options.env },
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  await waitFor(async () => (await fetch(metricsUrl.replace('/metrics', '/healthz'))).ok, {
    what: `${name} metrics endpoint`,
    process: proc,
    timeoutMs: 20_000,
  });
  // The local listener (unless the test brings its own sources) starts after the metrics
  // endpoint.
  if (options.overrides?.sources === undefined) {
    await waitFor(() => tcpOpen(sensorPort), { what: `${name} sensor listener`, process: proc });
  }
  return {
    process: proc,
    configPath,
    metricsUrl,
    sensorPort,
    metric: async (metric, labels = {}) => {
      const text = await (await fetch(metricsUrl)).text();
      return sumMetric(text, metric, labels);
    },
    stop: async () => {
      await proc.stop(15_000);
    },
    kill9: async () => {
      await proc.kill9();
    },
  };
}

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(patch)) {
    const current = target[key];
    if (
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof current === 'object' &&
      current !== null &&
      !Array.isArray(current)
    ) {
      merge(current as Record<string, unknown>, value as Record<string, unknown>);
    } else {
      target[key] = value;
    }
  }
}

async function tcpOpen(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function sumMetric(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (.+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).some(([k, v]) => have[k] !== v)) continue;
    total = (total ?? 0) + Number(m[4]);
  }
  return total;
}

/** A local sensor publishing SenML packs to the agent's listener (`sensors/<device>/senml`). */
export interface Sensor {
  readonly client: MqttClient;
  /** One reading per value of `metric` on `device`, times `t0 + i * stepS`. */
  publish(
    device: string,
    metric: string,
    values: readonly number[],
    times: readonly number[],
  ): Promise<void>;
  end(): Promise<void>;
}

export async function connectSensor(port: number): Promise<Sensor> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  return {
    client,
    async publish(device, metric, values, times) {
      const pack = values.map((v, i) => ({ n: metric, v, t: times[i]! }));
      await client.publishAsync(`sensors/${device}/senml`, JSON.stringify(pack), { qos: 1 });
    },
    async end() {
      await client.endAsync(true);
    },
  };
}

export interface StoredPoint {
  device: string;
  metric: string;
  timeMs: number;
  value: number | null;
  /** bit 0: backfilled (`bf`), bit 1: unsynced (`cq`). */
  marks: number;
}

/** Every point of the ingest's embedded store (telemetry.db), read-only. */
export function storedPoints(ingest: IngestHandle, device?: string): StoredPoint[] {
  const db = new Database(join(ingest.dataDir, 'telemetry.db'), {
    readonly: true,
    fileMustExist: true,
  });
  try {
    const sql = `SELECT device, metric, time_ms AS timeMs, num AS value, marks FROM points${
      device === undefined ? '' : ' WHERE device = ?'
    } ORDER BY device, metric, time_ms`;
    const stmt = db.prepare<unknown[], StoredPoint>(sql);
    return device === undefined ? stmt.all() : stmt.all(device);
  } catch (err) {
    if (String(err).includes('no such table')) return [];
    throw err;
  } finally {
    db.close();
  }
}

/** What an agent's outbox holds: pending readings (decoded) and the quarantine. */
export function outboxSnapshot(dataDir: string, publisher: string) {
  const outbox = new SqliteOutbox({
    path: join(dataDir, 'outbox.db'),
    maxBytes: Number.MAX_SAFE_INTEGER,
    whenFull: 'drop-oldest',
    readonly: true,
  });
  try {
    const stats = outbox.stats();
    const quarantine = outbox.listQuarantine(1000);
    const db = new Database(join(dataDir, 'outbox.db'), { readonly: true });
    const packs = db.prepare<[], { pack: string }>('SELECT pack FROM batches ORDER BY id').all();
    db.close();
    const readings = packs.flatMap((p) => decodePack(p.pack, publisher));
    return { stats, quarantine, readings };
  } finally {
    outbox.close();
  }
}

export async function ingestMetric(
  ingest: IngestHandle,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${ingest.url}/metrics`)).text();
  return sumMetric(text, name, labels) ?? 0;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
