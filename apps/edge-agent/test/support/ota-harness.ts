import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Manifest } from '@outpost/protocol/ota';
import type { KeyPair } from '@outpost/signing/keys';
import { signManifest } from '@outpost/signing/manifest';
import type { IngestHandle } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import mqtt, { type MqttClient } from 'mqtt';
import { stringify } from 'yaml';
import { apiOf, enrollGateway } from './agent-harness.js';

/**
 * Self-update drills against the real ingest: agent bundles packed from the current build
 * with another version, an install root with a launcher in front of the agent (as the
 * systemd unit runs it), firmware signed and uploaded through the API, and an HTTP proxy in
 * front of the ingest that can cut or spoil artifact downloads.
 */
const execFileP = promisify(execFile);

export const AGENT_DIR = dirname(
  createRequire(import.meta.url).resolve('@outpost/edge-agent/package.json'),
);
export const LAUNCHER = join(AGENT_DIR, 'bin', 'outpost-agent-launcher.mjs');
export const ENTRY = 'apps/edge-agent/dist/main.js';
/** The repository's node_modules: what a real bundle would carry inside itself. */
const NODE_MODULES = join(AGENT_DIR, '..', '..', 'node_modules');

/**
 * Compiles the agent from its sources into `<workDir>/build/dist`: the drills run their own
 * build, whatever state the shared `dist/` is in.
 */
export async function buildAgent(workDir: string): Promise<string> {
  const out = join(workDir, 'build', 'dist');
  const tsc = join(NODE_MODULES, 'typescript', 'bin', 'tsc');
  await execFileP(process.execPath, [
    tsc,
    '-p',
    join(AGENT_DIR, 'tsconfig.build.json'),
    '--outDir',
    out,
  ]);
  await symlink(NODE_MODULES, join(workDir, 'build', 'node_modules'));
  return out;
}

/** `outpost-agent enroll` of that build. */
export function enrollWith(
  distDir: string,
  ingest: IngestHandle,
  dataDir: string,
  gatewayId: string,
  children: readonly string[],
): Promise<void> {
  return enrollGateway(ingest, dataDir, gatewayId, children, join(distDir, 'main.js'));
}

/**
 * A `.tar.gz` of the built agent (`apps/edge-agent/{package.json,dist}`) claiming `version`.
 * `padBytes` adds an incompressible file, to make unpacking take a while.
 */
export async function packAgentBundle(
  distDir: string,
  workDir: string,
  version: string,
  options: { padBytes?: number; breakEntry?: boolean } = {},
): Promise<Buffer> {
  const src = join(workDir, `bundle-src-${version}-${randomBytes(3).toString('hex')}`);
  const app = join(src, 'apps', 'edge-agent');
  await mkdir(app, { recursive: true });
  await cp(distDir, join(app, 'dist'), { recursive: true });
  await copyNestedModules(app);
  const pkg = JSON.parse(await readFile(join(AGENT_DIR, 'package.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  await writeFile(join(app, 'package.json'), JSON.stringify({ ...pkg, version }, null, 2));
  if (options.padBytes) await writeFile(join(src, 'padding.bin'), randomBytes(options.padBytes));
  if (options.breakEntry) {
    await writeFile(join(app, 'dist', 'main.js'), "throw new Error('this build is broken');\n");
  }
  const archive = join(workDir, `agent-${version}.tar.gz`);
  await execFileP('tar', ['--format=gnu', '-czf', archive, '-C', src, '.']);
  await rm(src, { recursive: true, force: true });
  return readFile(archive);
}

/**
 * The agent's own `node_modules` (packages npm could not hoist to the workspace root because
 * another version is there, e.g. tar-stream 3 beside prebuild-install's tar-stream 2), as a
 * bundle made with `npm ci` carries it; the rest resolves through the root link.
 */
async function copyNestedModules(appDir: string): Promise<void> {
  const nested = join(AGENT_DIR, 'node_modules');
  if (existsSync(nested)) {
    await cp(nested, join(appDir, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  }
}

/**
 * `<root>/versions/<version>/` holding the current build, `current` → it, and a
 * `node_modules` link so bundles without their own dependencies resolve the workspace's.
 */
export async function makeInstallRoot(
  distDir: string,
  root: string,
  version: string,
): Promise<void> {
  const dir = join(root, 'versions', version, 'apps', 'edge-agent');
  await mkdir(dir, { recursive: true });
  await cp(distDir, join(dir, 'dist'), { recursive: true });
  await copyNestedModules(dir);
  const pkg = JSON.parse(await readFile(join(AGENT_DIR, 'package.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  await writeFile(join(dir, 'package.json'), JSON.stringify({ ...pkg, version }, null, 2));
  await symlink(`versions/${version}`, join(root, 'current'));
  await symlink(NODE_MODULES, join(root, 'node_modules'));
}

export interface LaunchedAgent {
  readonly process: ManagedProcess;
  readonly sensorPort: number;
  readonly metricsUrl: string;
  /** SIGKILL of the launcher and the agent under it (a power cut, as systemd sees it). */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the launcher with agent.yaml (a local MQTT listener for the test's sensor). */
export async function startLauncher(options: {
  dir: string;
  dataDir: string;
  root: string;
  name: string;
  sensorPort: number;
  ota: Record<string, unknown>;
}): Promise<LaunchedAgent> {
  const metricsPort = await freePort();
  const config = {
    dataDir: options.dataDir,
    sources: [{ mqtt: { listen: `127.0.0.1:${options.sensorPort}`, allowAnonymous: true } }],
    batch: { maxRecords: 100, maxAge: '200ms' },
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    uplink: { backoff: { initial: '100ms', max: '1s' }, http: { fallback: false } },
    clock: { timesyncd: false },
    ota: options.ota,
    log: { level: 'debug' },
  };
  const configPath = join(options.dir, `${options.name}.yaml`);
  await writeFile(configPath, stringify(config));
  const proc = ManagedProcess.start({
    name: options.name,
    command: process.execPath,
    args: [
      '--enable-source-maps',
      LAUNCHER,
      '--root',
      options.root,
      '--',
      ENTRY,
      'run',
      '--config',
      configPath,
    ],
    logPath: join(options.dir, `${options.name}.log`),
    env: { PATH: process.env.PATH ?? '' },
    stopTimeoutMs: 20_000,
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  return {
    process: proc,
    sensorPort: options.sensorPort,
    metricsUrl,
    async kill9() {
      const children = await childPids(proc.pid);
      for (const pid of children) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await proc.kill9();
    },
    async stop() {
      await proc.stop(20_000);
    },
  };
}

async function childPids(pid: number | undefined): Promise<number[]> {
  if (pid === undefined) return [];
  try {
    const { stdout } = await execFileP('ps', ['-o', 'pid=', '--ppid', String(pid)]);
    return stdout
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isSafeInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/**
 * A sensor on the agent's local MQTT listener publishing one reading every 300 ms while
 * `feeding`; it reconnects by itself across agent restarts.
 */
export class Feeder {
  feeding = true;
  readonly #client: MqttClient;
  readonly #timer: NodeJS.Timeout;
  #n = 0;

  constructor(port: number, device: string) {
    this.#client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 4,
      reconnectPeriod: 300,
      connectTimeout: 2000,
    });
    this.#client.on('error', () => undefined);
    this.#timer = setInterval(() => {
      if (!this.feeding || !this.#client.connected) return;
      const pack = [{ n: 'temp', v: 20 + (this.#n++ % 10), t: Date.now() / 1000 }];
      this.#client.publish(`sensors/${device}/senml`, JSON.stringify(pack), { qos: 0 });
    }, 300);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#client.endAsync(true);
  }
}

export interface ProxiedRequest {
  path: string;
  range: string | undefined;
  status: number;
  bytes: number;
}

/**
 * An HTTP proxy in front of the ingest, on its own port (the ingest's INGEST_PUBLIC_URL, so
 * offers name it). For artifact downloads `mode` may stop the first response after
 * `cutAfter` bytes (the connection hangs until the client drops it), or flip one byte of
 * every response.
 */
export class IngestProxy {
  upstream = '';
  mode: 'pass' | 'cut-first' | 'corrupt' = 'pass';
  cutAfter = 64 * 1024;
  readonly artifactRequests: ProxiedRequest[] = [];
  readonly #server: Server;
  #cutDone = false;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<IngestProxy> {
    const server = createServer();
    const proxy = new IngestProxy(server);
    server.on('request', (req, res) => proxy.#forward(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  setMode(mode: IngestProxy['mode']): void {
    this.mode = mode;
    this.#cutDone = false;
  }

  #forward(req: IncomingMessage, res: import('node:http').ServerResponse): void {
    const target = new URL(req.url ?? '/', this.upstream);
    const artifact = /\/api\/v1\/firmware\/[^/]+\/artifact$/.test(target.pathname);
    const upstream = httpRequest(
      target,
      { method: req.method, headers: { ...req.headers, host: target.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (!artifact) {
          up.pipe(res);
          return;
        }
        const record: ProxiedRequest = {
          path: target.pathname,
          range: req.headers.range,
          status: up.statusCode ?? 0,
          bytes: 0,
        };
        this.artifactRequests.push(record);
        const cut = this.mode === 'cut-first' && !this.#cutDone && up.statusCode === 200;
        if (cut) this.#cutDone = true;
        let flipped = false;
        up.on('data', (chunk: Buffer) => {
          let out = chunk;
          if (this.mode === 'corrupt' && !flipped && out.length > 0) {
            out = Buffer.from(out);
            out[out.length >> 1]! ^= 0xff;
            flipped = true;
          }
          if (cut && record.bytes + out.length >= this.cutAfter) {
            // The first `cutAfter` bytes arrive, then nothing more: the connection hangs
            // until the agent gives up on it (its idle timeout), as a dead link would.
            res.write(out.subarray(0, this.cutAfter - record.bytes));
            record.bytes = this.cutAfter;
            up.destroy();
            return;
          }
          record.bytes += out.length;
          res.write(out);
        });
        up.on('end', () => res.end());
        up.on('error', () => {
          if (!cut) res.destroy();
        });
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Signs a manifest for `bytes` (as `outpost firmware sign` does) and uploads both. */
export async function uploadFirmware(
  ingest: IngestHandle,
  key: KeyPair,
  bytes: Buffer,
  fields: Partial<Manifest> & { version: string },
): Promise<string> {
  const manifest: Manifest = {
    name: 'outpost-agent',
    component: 'agent',
    hardware: ['gw-test'],
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    createdAt: Math.floor(Date.now() / 1000),
    ...fields,
  };
  const jws = await signManifest(key.privateJwk, manifest);
  const res = await fetch(`${ingest.url}/api/v1/firmware`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ingest.adminToken}`,
      'content-type': 'application/octet-stream',
      'x-outpost-manifest': jws,
    },
    body: bytes,
  });
  const body = (await res.json()) as { id?: string };
  if (res.status !== 201 || body.id === undefined) {
    throw new Error(`firmware upload: HTTP ${res.status} ${JSON.stringify(body)}`);
  }
  return body.id;
}

export interface RolloutDevice {
  deviceId: string;
  state: string;
  reason: string | null;
  detail: string | null;
  version: string | null;
}

/** Creates a one-wave rollout of `firmwareId` to `deviceId`; returns its id. */
export async function createRollout(
  ingest: IngestHandle,
  firmwareId: string,
  deviceId: string,
): Promise<string> {
  const res = await apiOf(ingest)('POST', '/api/v1/rollouts', {
    firmwareId,
    target: { devices: [deviceId] },
    waves: [100],
    soakSeconds: 0,
    minDevices: 1,
  });
  if (res.status !== 201)
    throw new Error(`rollout: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

export async function rolloutDevice(
  ingest: IngestHandle,
  rolloutId: string,
  deviceId: string,
): Promise<RolloutDevice | undefined> {
  const res = await apiOf(ingest)('GET', `/api/v1/rollouts/${rolloutId}`);
  const devices = (res.body.devices ?? []) as RolloutDevice[];
  return devices.find((d) => d.deviceId === deviceId);
}

const TERMINAL = new Set(['succeeded', 'failed', 'rolled_back']);

/** Waits until the device finished the rollout at the ingest; its final record. */
export async function waitForResult(
  ingest: IngestHandle,
  rolloutId: string,
  deviceId: string,
  options: { timeoutMs?: number; process?: ManagedProcess } = {},
): Promise<RolloutDevice> {
  let last: RolloutDevice | undefined;
  await waitFor(
    async () => {
      last = await rolloutDevice(ingest, rolloutId, deviceId);
      return last !== undefined && TERMINAL.has(last.state);
    },
    {
      what: `rollout ${rolloutId} result of ${deviceId}`,
      timeoutMs: options.timeoutMs ?? 120_000,
      intervalMs: 250,
      ...(options.process ? { process: options.process } : {}),
    },
  );
  return last!;
}

/** The agent version the device reports in its state (PROTOCOL.md §6). */
export async function reportedAgentVersion(
  ingest: IngestHandle,
  deviceId: string,
): Promise<string | undefined> {
  const res = await apiOf(ingest)('GET', `/api/v1/devices/${deviceId}`);
  const state = res.body.reportedState as { agent?: { version?: string } } | null | undefined;
  return state?.agent?.version;
}

/**
 * Per-device rollout changes as the ingest streams them (`GET /api/v1/stream?types=rollouts`):
 * what the agent's `ota.progress` and `ota.result` events did at the ingest.
 */
export class RolloutEvents {
  readonly seen: { rolloutId: string; state: string; reason: string | null }[] = [];
  readonly #abort = new AbortController();

  private constructor() {}

  static async open(ingest: IngestHandle, deviceId: string): Promise<RolloutEvents> {
    const events = new RolloutEvents();
    const res = await fetch(
      `${ingest.url}/api/v1/stream?types=rollouts&device=${encodeURIComponent(deviceId)}`,
      {
        headers: { authorization: `Bearer ${ingest.adminToken}`, accept: 'text/event-stream' },
        signal: events.#abort.signal,
      },
    );
    if (!res.ok || res.body === null) throw new Error(`stream: HTTP ${res.status}`);
    void events.#read(res.body);
    return events;
  }

  async #read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (frame.includes('event: rollouts') && data) {
            const event = JSON.parse(data) as {
              kind: string;
              rolloutId: string;
              device?: { state: string; reason: string | null };
            };
            if (event.kind === 'device' && event.device) {
              this.seen.push({
                rolloutId: event.rolloutId,
                state: event.device.state,
                reason: event.device.reason,
              });
            }
          }
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // closed
    }
  }

  states(rolloutId: string): string[] {
    return this.seen.filter((e) => e.rolloutId === rolloutId).map((e) => e.state);
  }

  close(): void {
    this.#abort.abort();
  }
}
