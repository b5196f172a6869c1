import { execFileSync, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseSenmlPack, resolveSenml, toReadings } from '@outpost/protocol/senml';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { generateKeyPair } from '@outpost/signing/keys';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { startMosquitto } from '@outpost/test-kit/mosquitto';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceStats, FleetStats } from '../src/device.js';
import { type MqttFleet, startMqttFleet } from '../src/mqtt-fleet.js';
import { scenarioFromObject } from '../src/scenario.js';

// Real: the built ingest as a separate process (startIngest), its HTTP API and MQTT broker,
// kill -9 for the crash; mosquitto with a password file for local mode; mqtt.js over TCP on
// both sides; the built `outpost-sim` binary for the fleet command. Mocked: nothing.

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FAST_BACKOFF = { initialMs: 100, maxMs: 1000 };

const services = useServices();
const workDirs: WorkDir[] = [];
let ingest: IngestHandle;

beforeAll(async () => {
  ingest = await services.add(startIngest());
});
afterAll(async () => {
  for (const dir of workDirs.splice(0)) await dir.cleanup();
});

async function workDir(name: string): Promise<WorkDir> {
  const dir = await makeWorkDir(name);
  workDirs.push(dir);
  return dir;
}

async function api<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  admin = true,
): Promise<T> {
  const response = await fetch(`${ingest.url}${path}`, {
    method,
    headers: {
      ...(admin ? { authorization: `Bearer ${ingest.adminToken}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Enrolls a device the way `outpost device credentials` does: key made here, proof, enroll. */
async function enrollByHand(deviceId: string) {
  const created = await api<{ token: string; jti: string }>('POST', '/api/v1/enrollments', {
    deviceId,
  });
  const pair = await generateKeyPair('EdDSA');
  const { token: proof } = await signEnrollmentProof(pair.privateJwk, {
    jti: created.jti,
    deviceId,
  });
  const reply = await api<Record<string, unknown>>(
    'POST',
    '/api/v1/enroll',
    { token: created.token, publicKey: pair.publicJwk, proof },
    false,
  );
  return { pair, reply };
}

async function storedCount(deviceId: string, metric: string): Promise<number> {
  const body = await api<{ points: unknown[] }>(
    'GET',
    `/api/v1/devices/${deviceId}/telemetry?metric=${metric}&from=-1d&to=now&limit=10000`,
  );
  return body.points.length;
}

async function poll(check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check()) && Date.now() < deadline) await sleep(100);
}

/**
 * The ingest acknowledges a batch once it is in its durable outbox; the store catches up
 * shortly after. Waits for that, then compares exactly.
 */
async function expectStored(deviceId: string, expected: Record<string, number>): Promise<void> {
  const counts = async () => {
    const out: Record<string, number> = {};
    for (const metric of Object.keys(expected)) out[metric] = await storedCount(deviceId, metric);
    return out;
  };
  await poll(async () => Object.entries(await counts()).every(([m, n]) => n >= expected[m]!));
  expect(await counts(), deviceId).toEqual(expected);
}

/** Every reading made was acknowledged, none refused, none left over. */
function expectAllAcked(device: DeviceStats): void {
  const m = device.mqtt!;
  expect(m.ackedReadings, device.id).toBeGreaterThan(0);
  expect(m.madeReadings, device.id).toBe(m.ackedReadings);
  expect(m.publishedReadings, device.id).toBe(m.ackedReadings);
  expect(m.pendingReadings, device.id).toBe(0);
  expect(m.rejectedReadings, device.id).toBe(0);
  expect(device.readings, device.id).toBe(m.ackedReadings);
  expect(device.skipped, device.id).toBe(0);
}

async function runFleet(
  devices: Record<string, unknown>[],
  forMs: number,
  options: {
    baseDir?: string;
    faults?: Record<string, unknown>[];
    drainTimeoutMs?: number;
    during?: (fleet: MqttFleet) => Promise<void>;
  } = {},
): Promise<FleetStats> {
  const scenario = scenarioFromObject(
    { server: ingest.url, devices, faults: options.faults ?? [] },
    'test',
  );
  const fleet = await startMqttFleet(scenario, {
    adminToken: ingest.adminToken,
    backoff: FAST_BACKOFF,
    ...(options.baseDir === undefined ? {} : { baseDir: options.baseDir }),
    ...(options.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: options.drainTimeoutMs }),
  });
  try {
    await sleep(forMs);
    await options.during?.(fleet);
  } finally {
    await fleet.stop();
  }
  return fleet.stats();
}

const METRICS = { t: 'sine:20:5:10s,noise=0.1', h: 'const:40,noise=1' };

describe('MQTT devices against a real ingest', () => {
  it('stores exactly what was acknowledged, for devices of every identity source', async () => {
    const work = await workDir('sim-identities');
    // An enrollment token made beforehand, used by the device itself.
    const { token } = await api<{ token: string }>('POST', '/api/v1/enrollments', {
      deviceId: 'id-token',
    });
    // A credentials directory as `outpost device credentials` writes it.
    const byCli = await enrollByHand('id-creds');
    await writeFile(work.join('device-key.json'), JSON.stringify(byCli.pair.privateJwk));
    await writeFile(
      work.join('credentials.json'),
      JSON.stringify({
        v: 1,
        deviceId: 'id-creds',
        kind: 'device',
        gateway: null,
        kid: byCli.pair.kid,
        alg: byCli.pair.alg,
        privateKeyFile: 'device-key.json',
        publicKey: byCli.pair.publicJwk,
        endpoints: byCli.reply.endpoints,
        audience: byCli.reply.audience,
        jwks: byCli.reply.jwks,
        releaseKeys: [],
        enrolledAt: new Date().toISOString(),
      }),
    );
    // A bare private JWK, with the service JWKS next to it.
    const byKey = await enrollByHand('id-key');
    await writeFile(work.join('id-key.json'), JSON.stringify(byKey.pair.privateJwk));
    await writeFile(work.join('jwks.json'), JSON.stringify(byKey.reply.jwks));

    const common = { transport: 'mqtt', rate: 20, batch: { size: 10, interval: '300ms' } };
    const stats = await runFleet(
      [
        { id: 'id-enroll-1', enroll: true, metrics: METRICS, ...common },
        { id: 'id-enroll-2', enroll: true, metrics: METRICS, ...common, rate: 40 },
        { id: 'id-token', enrollmentToken: token, metrics: METRICS, ...common },
        { id: 'id-creds', credentials: '.', metrics: METRICS, ...common },
        {
          id: 'id-key',
          privateKey: 'id-key.json',
          jwks: 'jwks.json',
          broker: ingest.mqttUrl,
          metrics: METRICS,
          ...common,
        },
      ],
      3000,
      { baseDir: work.path },
    );
    expect(Object.keys(stats.devices)).toHaveLength(5);
    for (const device of Object.values(stats.devices)) {
      expectAllAcked(device);
      expect(device.readings).toBeGreaterThanOrEqual(device.id === 'id-enroll-2' ? 100 : 50);
      expect(device.sent).toEqual({ t: device.readings, h: device.readings });
      expect(device.mqtt!.connects).toBe(1);
      await expectStored(device.id, device.sent);
    }
    expect(stats.totals.mqtt).toMatchObject({ devices: 5, connectFailures: 0, reconnects: 0 });
  });

  it('survives kill -9 of the ingest: reconnects, resends, and stores each reading once', async () => {
    const devices = ['crash-1', 'crash-2', 'crash-3'].map((id) => ({
      id,
      transport: 'mqtt',
      enroll: true,
      rate: 50,
      window: 4,
      batch: { size: 10, interval: '200ms' },
      metrics: METRICS,
    }));
    let pendingAtRestart = 0;
    const stats = await runFleet(devices, 1500, {
      during: async (fleet) => {
        // Frozen, the ingest reads nothing and acknowledges nothing: the batches sent now
        // are in flight when it is killed, and must go out again after the restart.
        process.kill(ingest.process.pid!, 'SIGSTOP');
        await sleep(600);
        await ingest.kill9();
        await sleep(1500);
        // Readings made while the ingest is down wait in the devices' outboxes.
        pendingAtRestart = fleet.stats().totals.mqtt!.pendingReadings;
        await ingest.restart();
        await poll(() => fleet.devices.every((d) => d.stats().connected));
        await sleep(1500);
      },
    });
    expect(pendingAtRestart).toBeGreaterThan(0);
    for (const device of Object.values(stats.devices)) {
      expectAllAcked(device);
      expect(device.mqtt!.disconnects).toBe(1);
      expect(device.mqtt!.reconnects).toBe(1);
      expect(device.mqtt!.connectFailures).toBeGreaterThan(0);
      await expectStored(device.id, device.sent);
    }
    expect(stats.totals.mqtt!.batches.resent).toBeGreaterThanOrEqual(3);
    // The readings of the outage went out after the reconnect.
    expect(stats.totals.mqtt!.ackedReadings).toBeGreaterThan(3 * 50 * 4);
  });

  it('sends bare SenML when unsigned: stored where the policy allows, refused where not', async () => {
    // The simulator enrolls `bare-ok` itself and sets its payloadSigning to optional;
    // `bare-refused` keeps the default (required), so its bare packs are refused.
    const { token } = await api<{ token: string }>('POST', '/api/v1/enrollments', {
      deviceId: 'bare-refused',
    });
    const common = { transport: 'mqtt', signing: false, rate: 20, metrics: METRICS };
    const stats = await runFleet(
      [
        { id: 'bare-ok', enroll: true, ...common },
        { id: 'bare-refused', enrollmentToken: token, ...common },
      ],
      2000,
    );
    const device = await api<{ policy: { payloadSigning: string } }>(
      'GET',
      '/api/v1/devices/bare-ok',
    );
    expect(device.policy.payloadSigning).toBe('optional');
    const ok = stats.devices['bare-ok']!;
    expectAllAcked(ok);
    await expectStored('bare-ok', ok.sent);
    // Refused batches are acknowledged (PROTOCOL.md §9); a bare pack names no batch to reply about.
    const refused = stats.devices['bare-refused']!;
    expect(refused.mqtt!.ackedReadings).toBeGreaterThan(0);
    expect(refused.mqtt!.commands.received).toBe(0);
    expect(await storedCount('bare-refused', 't')).toBe(0);
    const metrics = await fetch(`${ingest.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/outpost_ingest_rejected_total\{reason="policy"[^}]*\} [1-9]/);
  });

  it('counts batches the ingest refuses, from verified telemetry.rejected commands', async () => {
    const scenario = scenarioFromObject(
      {
        server: ingest.url,
        devices: [
          {
            id: 'refusee',
            transport: 'mqtt',
            enroll: true,
            rate: 20,
            batch: { size: 5, interval: '1s' },
            metrics: METRICS,
          },
        ],
        faults: [{ at: '500ms', badBatch: 2 }],
      },
      'test',
    );
    const fleet = await startMqttFleet(scenario, { adminToken: ingest.adminToken });
    await sleep(2000);
    await fleet.stop();
    const device = fleet.stats().devices.refusee!;
    const m = device.mqtt!;
    expect(m.batches.rejected).toBe(2);
    expect(m.rejectedReadings).toBe(10);
    expect(m.commands).toMatchObject({ invalid: 0, rejected: 2, unmatched: 0 });
    expect(m.madeReadings).toBe(m.ackedReadings);
    expect(m.pendingReadings).toBe(0);
    // The service stores what it acknowledged and did not refuse.
    const kept = m.ackedReadings - m.rejectedReadings;
    await expectStored('refusee', { t: kept, h: kept });
  });

  it('renews its device JWT before expiry, and stamps readings with its skewed clock', async () => {
    const common = { transport: 'mqtt', enroll: true, rate: 20, metrics: METRICS };
    const startedAt = Date.now();
    const stats = await runFleet(
      [
        { id: 'renewer', jwtLifetime: '3s', ...common },
        { id: 'behind', clockSkew: '-30s', ...common },
        { id: 'ahead', ...common },
      ],
      3500,
      {
        // Beyond the 60 s allowance, its next JWT is "issued in the future" (PROTOCOL.md §3).
        faults: [
          { at: '300ms', device: 'ahead', clockSkew: { by: '2m' } },
          { at: '600ms', device: 'ahead', unplug: { for: '200ms' } },
        ],
        drainTimeoutMs: 1000,
      },
    );
    const renewer = stats.devices.renewer!;
    expectAllAcked(renewer);
    expect(renewer.mqtt!.renewals).toBeGreaterThanOrEqual(1);
    expect(renewer.mqtt!.connects).toBe(renewer.mqtt!.renewals + 1);
    expect(renewer.mqtt!.disconnects).toBe(0);
    await expectStored('renewer', renewer.sent);

    const behind = stats.devices.behind!;
    expectAllAcked(behind);
    await expectStored('behind', behind.sent);
    const points = await api<{ points: { time: string }[] }>(
      'GET',
      '/api/v1/devices/behind/telemetry?metric=t&from=-1d&to=now&limit=1',
    );
    const first = Date.parse(points.points[0]!.time);
    expect(first).toBeGreaterThanOrEqual(startedAt - 30_000 - 1000);
    expect(first).toBeLessThan(startedAt - 30_000 + 2000);

    const ahead = stats.devices.ahead!;
    expect(ahead.clockSkewMs).toBe(120_000);
    expect(ahead.mqtt).toMatchObject({ connects: 1, disconnects: 1 });
    expect(ahead.mqtt!.connectFailures).toBeGreaterThan(0);
    expect(ahead.mqtt!.pendingReadings).toBeGreaterThan(0);
    await expectStored('ahead', ahead.sent);
  });

  it('runs `outpost-sim fleet`: 20 devices × 10 readings/s, stats file totals = stored', async () => {
    const work = await workDir('sim-fleet-cli');
    const statsFile = work.join('stats.json');
    const proc = spawn(
      process.execPath,
      [
        MAIN,
        'fleet',
        '--server',
        ingest.url,
        '--devices',
        '20',
        '--rate',
        '10',
        '--duration',
        '5s',
        '--prefix',
        'load-',
        '--stats-file',
        statsFile,
        '--stats-interval',
        '500ms',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, OUTPOST_ADMIN_TOKEN: ingest.adminToken },
      },
    );
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    proc.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    expect(code, stderr).toBe(0);
    const events = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(['ready', 'stats']);
    expect((events[0]!.devices as string[]).slice(0, 2)).toEqual(['load-001', 'load-002']);
    const stats = JSON.parse(await readFile(statsFile, 'utf8')) as FleetStats;
    expect(events[1]).toMatchObject({ reason: 'duration', totals: stats.totals });
    expect(Object.keys(stats.devices)).toHaveLength(20);
    let stored = 0;
    for (const device of Object.values(stats.devices)) {
      expectAllAcked(device);
      await expectStored(device.id, device.sent);
      stored += await storedCount(device.id, 'v');
    }
    expect(stats.totals.mqtt!.devices).toBe(20);
    expect(stats.totals.readings).toBe(stored);
    expect(stats.totals.mqtt!.ackedReadings).toBe(stored);
    // 5 s at 10 readings/s, and the first one at once.
    expect(stored).toBeGreaterThanOrEqual(20 * 50);
  }, 60_000);

  it('refuses a scenario with path-listed errors, and one for the other transport', async () => {
    const work = await workDir('sim-mqtt-bad');
    const bad = work.join('bad.yaml');
    await writeFile(
      bad,
      'devices:\n  - { id: x, transport: mqtt, rate: fast, batch: { size: 0 }, metrics: { t: "const:1" } }\n',
    );
    const serialScenario = fileURLToPath(new URL('../scenarios/boiler-room.yaml', import.meta.url));
    for (const [file, pattern] of [
      [bad, /devices\[0\]\.rate: [\s\S]*devices\[0\]\.batch\.size: /],
      [
        serialScenario,
        /devices\[0\]: "boiler-1" is a serial device: run it with outpost-sim serial/,
      ],
    ] as const) {
      const proc = spawn(process.execPath, [MAIN, 'mqtt', '--scenario', file], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      proc.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      expect(await new Promise((resolve) => proc.once('exit', resolve))).toBe(2);
      expect(stderr).toMatch(pattern);
    }
  });
});

describe('MQTT devices on a local broker (mosquitto)', () => {
  it('publishes numbers, JSON and SenML with credentials; a wrong password gets nowhere', async () => {
    const work = await workDir('sim-local');
    const passwords = work.join('passwd');
    execFileSync('mosquitto_passwd', ['-c', '-b', passwords, 'sensors', 'secret']);
    const broker = await services.add(
      startMosquitto({ config: ['allow_anonymous false', `password_file ${passwords}`] }),
    );
    const received: { topic: string; payload: string }[] = [];
    const listener = await mqtt.connectAsync(broker.url, {
      protocolVersion: 4,
      username: 'sensors',
      password: 'secret',
    });
    try {
      listener.on('message', (topic, payload) =>
        received.push({ topic, payload: payload.toString() }),
      );
      await listener.subscribeAsync(['sensors/#', 'site/#'], { qos: 1 });
      const local = { transport: 'mqtt', mode: 'local', broker: broker.url, username: 'sensors' };
      const scenario = scenarioFromObject(
        {
          devices: [
            { id: 'room-1', ...local, password: 'secret', rate: 20, metrics: METRICS },
            {
              id: 'room-2',
              ...local,
              password: 'secret',
              payload: 'json',
              topic: 'site/{device}/climate',
              rate: 10,
              clockSkew: '-1h',
              metrics: METRICS,
            },
            {
              id: 'room-3',
              ...local,
              password: 'secret',
              payload: 'senml',
              qos: 0,
              rate: 10,
              metrics: { t: 'const:21.5' },
            },
            { id: 'room-4', ...local, password: 'wrong', rate: 10, metrics: { t: 'const:1' } },
          ],
        },
        'test',
      );
      const fleet = await startMqttFleet(scenario, { drainTimeoutMs: 1000, backoff: FAST_BACKOFF });
      const startedAt = Date.now();
      await sleep(2000);
      await fleet.stop();
      const stats = fleet.stats();
      const on = (topic: string) => received.filter((m) => m.topic === topic);
      const room1 = stats.devices['room-1']!;
      const room2 = stats.devices['room-2']!;
      const room3 = stats.devices['room-3']!;
      const room4 = stats.devices['room-4']!;
      await poll(() => on('sensors/room-3/senml').length >= room3.readings, 5000);

      expectAllAcked(room1);
      expect(on('sensors/room-1/t')).toHaveLength(room1.sent.t!);
      expect(on('sensors/room-1/h')).toHaveLength(room1.sent.h!);
      expect(on('sensors/room-1/t').every((m) => Number.isFinite(Number(m.payload)))).toBe(true);

      expectAllAcked(room2);
      const climate = on('site/room-2/climate').map((m) => JSON.parse(m.payload));
      expect(climate).toHaveLength(room2.readings);
      expect(Object.keys(climate[0]).sort()).toEqual(['h', 't', 'time']);
      // Its clock runs an hour behind.
      expect(climate[0].time * 1000).toBeGreaterThan(startedAt - 3600_000 - 1000);
      expect(climate[0].time * 1000).toBeLessThan(startedAt - 3600_000 + 1000);

      expectAllAcked(room3);
      const packs = on('sensors/room-3/senml').map((m) =>
        toReadings(resolveSenml(parseSenmlPack(JSON.parse(m.payload)), { now: 0 }), 'room-3'),
      );
      expect(packs).toHaveLength(room3.readings);
      expect(packs.flat().every((r) => r.metric === 't' && r.value === 21.5)).toBe(true);

      expect(room4.mqtt!.connects).toBe(0);
      expect(room4.mqtt!.connectFailures).toBeGreaterThan(0);
      expect(room4.readings).toBe(0);
      expect(room4.mqtt!.pendingReadings).toBe(room4.mqtt!.madeReadings);
      expect(received.some((m) => m.topic.startsWith('sensors/room-4/'))).toBe(false);
    } finally {
      await listener.endAsync();
    }
  });
});
