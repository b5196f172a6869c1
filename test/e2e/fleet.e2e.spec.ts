import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import {
  startVictoriaMetrics,
  type VictoriaMetricsHandle,
} from '@outpost/test-kit/victoria-metrics';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

// The whole system as a user deploys it, every part a separate process: victoria-metrics,
// the ingest, one edge agent reading 3 serial devices (firmware-sim on socat pty pairs) and
// 2 local-MQTT devices, plus 20 devices talking MQTT to the ingest directly. The agent's
// uplink goes through a small TCP proxy so the test can cut the gateway off. Nothing is
// mocked. Logs of every process stay in the work dir when a test fails.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AGENT = join(ROOT, 'apps/edge-agent/dist/main.js');
const SIM = join(ROOT, 'firmware-sim/dist/main.js');
const CLI = join(ROOT, 'apps/cli/dist/main.js');
const SERIAL = ['serial-1', 'serial-2', 'serial-3'];
const LOCAL = ['local-1', 'local-2'];
const DIRECT = 20;

/** A TCP proxy that can cut every connection and refuse new ones for a while. */
class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private cut = false;
  private server: Server | undefined;
  port = 0;

  async start(targetPort: number): Promise<void> {
    this.server = createServer((client) => {
      if (this.cut) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    this.port = await freePort();
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
  }

  cutOff(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.cut = false;
  }

  async stop(): Promise<void> {
    this.cutOff();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

type Api = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; body: Record<string, unknown> }>;

function run(command: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [command, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** JSON lines a process printed (its log file holds stdout and stderr). */
function jsonLines(proc: ManagedProcess): Record<string, unknown>[] {
  return proc
    .log()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

describe('end to end: sensors → agent → ingest → victoria-metrics', () => {
  const services = useServices();
  let work: WorkDir;
  let vm: VictoriaMetricsHandle;
  let ingest: IngestHandle;
  let api: Api;
  const proxy = new CuttableProxy();
  const procs: ManagedProcess[] = [];
  let serialSim: ManagedProcess;
  let localSim: ManagedProcess;
  let fleet: ManagedProcess;
  let agent: ManagedProcess;

  const start = (name: string, args: string[]) => {
    const p = ManagedProcess.start({
      name,
      command: process.execPath,
      args: ['--enable-source-maps', ...args],
      logPath: work.join(`${name}.log`),
      env: { PATH: process.env.PATH ?? '', HOME: work.path },
    });
    procs.push(p);
    return p;
  };

  async function stored(device: string): Promise<number> {
    await vm.flush();
    const series = await vm.exportSeries(`{__name__=~".+_value",device="${device}"}`);
    return series.reduce((n, s) => n + s.values.length, 0);
  }

  beforeAll(async () => {
    work = await makeWorkDir('e2e-fleet');
    vm = await services.add(
      startVictoriaMetrics({ workDir: work.path, args: ['-dedup.minScrapeInterval=1ms'] }),
    );
    ingest = await services.add(
      startIngest({
        workDir: work.path,
        env: {
          INGEST_INFLUX_URL: vm.url,
          INGEST_INFLUX_API: 'v2',
          INGEST_INFLUX_BUCKET: 'outpost',
        },
      }),
    );
    api = async (method, path, body) => {
      const res = await fetch(`${ingest.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${ingest.adminToken}`,
          'content-type': 'application/json',
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return {
        status: res.status,
        body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
      };
    };
    await proxy.start(ingest.mqttPort);

    // The gateway enrolls itself with a token a technician made; its children are imported.
    const enrollment = await api('POST', '/api/v1/enrollments', {
      deviceId: 'e2e-gw',
      kind: 'gateway',
      tags: { site: 'e2e' },
    });
    const agentData = work.join('agent-data');
    const enrolled = await run(AGENT, [
      'enroll',
      '--server',
      ingest.url,
      '--token',
      enrollment.body.token as string,
      '--data-dir',
      agentData,
    ]);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const imported = await api(
      'POST',
      '/api/v1/devices/import',
      [...SERIAL, ...LOCAL].map((id) => ({ id, gateway: 'e2e-gw', tags: { site: 'e2e' } })),
    );
    expect(imported.status).toBe(200);

    // Three serial devices on pty pairs; they stay quiet until the agent asks `ID?`, so every
    // reading they send is read.
    const scenario = {
      name: 'e2e-serial',
      seed: 3,
      devices: SERIAL.map((id, i) => ({
        id,
        serial: `E2E${i}`,
        hardware: 'th-v2',
        firmware: '1.0.0',
        pty: true,
        rate: 5,
        waitForId: true,
        metrics: { t: `sine:20:${i + 1}:1m,noise=0.1` },
      })),
    };
    await writeFile(work.join('serial.json'), JSON.stringify(scenario));
    serialSim = start('sim-serial', [
      SIM,
      'serial',
      '--scenario',
      work.join('serial.json'),
      '--pty-dir',
      work.join('pty'),
      '--stats-file',
      work.join('serial-stats.json'),
    ]);
    const ptys = await waitFor(
      () => {
        const events = jsonLines(serialSim).filter((e) => e.event === 'pty');
        return events.length === SERIAL.length ? events : undefined;
      },
      { what: 'serial ptys', process: serialSim, timeoutMs: 20_000 },
    );

    const sensorPort = await freePort();
    const metricsPort = await freePort();
    const config = {
      server: ingest.url,
      dataDir: agentData,
      sources: [
        ...ptys.map((e) => ({
          serial: { port: e.appPath, parser: 'outpost-line', device: e.device },
        })),
        { mqtt: { listen: `127.0.0.1:${sensorPort}`, allowAnonymous: true } },
      ],
      batch: { maxRecords: 200, maxAge: '500ms' },
      uplink: {
        mqtt: `mqtt://127.0.0.1:${proxy.port}`,
        backoff: { initial: '200ms', max: '2s' },
        http: { fallback: false },
      },
      state: { every: '2s' },
      metrics: { listen: `127.0.0.1:${metricsPort}` },
      clock: { timesyncd: false },
    };
    await writeFile(work.join('agent.yaml'), JSON.stringify(config));
    agent = start('agent', [AGENT, 'run', '--config', work.join('agent.yaml')]);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).ok, {
      what: 'agent',
      process: agent,
      timeoutMs: 20_000,
    });

    const local = {
      name: 'e2e-local',
      seed: 4,
      devices: LOCAL.map((id) => ({
        id,
        transport: 'mqtt',
        mode: 'local',
        broker: `mqtt://127.0.0.1:${sensorPort}`,
        payload: 'senml',
        rate: 5,
        metrics: { h: 'const:40,noise=1' },
      })),
    };
    await writeFile(work.join('local.json'), JSON.stringify(local));
    localSim = start('sim-local', [
      SIM,
      'mqtt',
      '--scenario',
      work.join('local.json'),
      '--stats-file',
      work.join('local-stats.json'),
    ]);
    fleet = start('sim-fleet', [
      SIM,
      'fleet',
      '--server',
      ingest.url,
      '--admin-token',
      ingest.adminToken,
      '--devices',
      String(DIRECT),
      '--rate',
      '5',
      '--batch',
      '10',
      '--prefix',
      'direct-',
      '--stats-file',
      work.join('fleet-stats.json'),
    ]);
  }, 120_000);

  let failed = false;
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') failed = true;
  });
  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop(10_000);
    await proxy.stop();
    // Logs of every process stay in the work dir when anything failed.
    if (failed) process.stderr.write(`e2e logs kept in ${work.path}\n`);
    await work?.cleanup({ keep: failed });
  });

  it('shows the gateway and the direct devices online in `outpost device list`', async () => {
    const online = await waitFor(
      async () => {
        const res = await run(CLI, ['device', 'list', '--status', 'online', '--all', '--json'], {
          OUTPOST_URL: ingest.url,
          OUTPOST_TOKEN: ingest.adminToken,
          OUTPOST_PROFILE: work.join('none.json'),
        });
        const ids = (JSON.parse(res.stdout) as { items: { id: string }[] }).items.map((d) => d.id);
        return ids.includes('e2e-gw') &&
          ids.filter((id) => id.startsWith('direct-')).length === DIRECT
          ? ids
          : undefined;
      },
      { what: 'devices online', timeoutMs: 60_000 },
    );
    expect(online).toContain('e2e-gw');
  });

  it('loses nothing while the gateway is cut off for 60 s, and shows its outbox through the API', async () => {
    await waitFor(async () => (await stored('serial-1')) > 0 && (await stored('local-1')) > 0, {
      what: 'first readings stored',
      timeoutMs: 30_000,
    });
    proxy.cutOff();
    await new Promise((r) => setTimeout(r, 60_000));
    const during = await api('GET', '/api/v1/devices/e2e-gw');
    expect((during.body.connectivity as { online: boolean }).online).toBe(false);
    proxy.restore();
    // The agent reconnects and reports a non-empty outbox before it has drained.
    await waitFor(
      async () => {
        const d = await api('GET', '/api/v1/devices/e2e-gw');
        const outbox = d.body.outbox as { pending: number; oldestS: number } | null;
        return outbox !== null && (d.body.connectivity as { online: boolean }).online;
      },
      { what: 'gateway back online with outbox stats', timeoutMs: 60_000 },
    );
  }, 180_000);

  it('stores every reading sent exactly once', async () => {
    for (const p of [serialSim, localSim, fleet]) {
      p.signal('SIGINT');
      await p.waitForExit(30_000);
    }
    const serialStats = JSON.parse(readFileSync(work.join('serial-stats.json'), 'utf8')) as {
      devices: Record<string, { readings: number }>;
    };
    const localStats = JSON.parse(readFileSync(work.join('local-stats.json'), 'utf8')) as {
      devices: Record<string, { readings: number }>;
    };
    const fleetStats = JSON.parse(readFileSync(work.join('fleet-stats.json'), 'utf8')) as {
      devices: Record<string, { readings: number }>;
    };
    const expected: Record<string, number> = {};
    for (const stats of [serialStats, localStats, fleetStats]) {
      for (const [id, d] of Object.entries(stats.devices)) expected[id] = d.readings;
    }
    expect(Object.keys(expected)).toHaveLength(SERIAL.length + LOCAL.length + DIRECT);
    for (const id of Object.keys(expected)) expect(expected[id], id).toBeGreaterThan(0);
    // Well over a minute of readings from 25 devices, 60 s of it buffered at the edge.
    expect(Object.values(expected).reduce((a, b) => a + b, 0)).toBeGreaterThan(5000);
    // The agent drains its outbox; then the store holds exactly what was sent.
    const counts = await waitFor(
      async () => {
        const now: Record<string, number> = {};
        for (const id of Object.keys(expected)) now[id] = await stored(id);
        return Object.keys(expected).every((id) => now[id] === expected[id]) ? now : undefined;
      },
      { what: 'every reading stored', timeoutMs: 90_000 },
    ).catch(async (err: unknown) => {
      const now: Record<string, number> = {};
      for (const id of Object.keys(expected)) now[id] = await stored(id);
      throw new Error(
        `${String(err)}\nexpected ${JSON.stringify(expected)}\nstored   ${JSON.stringify(now)}`,
      );
    });
    expect(counts).toEqual(expected);
  }, 180_000);
});
