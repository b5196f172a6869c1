import { performance } from 'node:perf_hooks';
import { topics } from '@outpost/protocol/topics';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { generateKeyPair } from '@outpost/signing/keys';
import type { IngestHandle } from '@outpost/test-kit/ingest';
import { type IngestCluster, startIngestCluster } from '@outpost/test-kit/ingest-cluster';
import { type PostgresHandle, startPostgres } from '@outpost/test-kit/postgres';
import { type RedisHandle, startRedis } from '@outpost/test-kit/redis';
import {
  startVictoriaMetrics,
  type VictoriaMetricsHandle,
} from '@outpost/test-kit/victoria-metrics';
import { useServices } from '@outpost/test-kit/vitest';
import type { MqttClient } from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ClusterDevice,
  collectCommands,
  connectDevice,
  enroll,
  openStream,
  publishUntilAcked,
  signedBatches,
} from './support/cluster-devices.js';
import { makeFirmware, uploadFirmware } from './support/firmware.js';
import { type ApiClient, apiClient, waitUntil } from './support/ingest-app.js';

// Real parts: redis-server, PostgreSQL 15, victoria-metrics, three built ingest processes in
// cluster mode (INGEST_REDIS_URL + INGEST_DATABASE_URL), the test kit's TCP balancer in front
// of their MQTT ports, mqtt.js devices with real device JWTs and signed batches, kill -9.
// Nothing mocked. Deadlines are generous (2 cores, other suites running); the one timing
// assertion is PROTOCOL.md §2's 1 s revocation bound.

const services = useServices();
let redis: RedisHandle;
let postgres: PostgresHandle;
let vm: VictoriaMetricsHandle;
let cluster: IngestCluster;
/** The API of each replica. */
let apis: ApiClient[];
let replicas: readonly IngestHandle[];

beforeAll(async () => {
  [redis, postgres, vm] = await Promise.all([
    services.add(startRedis()),
    services.add(startPostgres()),
    services.add(startVictoriaMetrics({ args: ['-dedup.minScrapeInterval=1ms'] })),
  ]);
  const databaseUrl = await postgres.createDatabase('outpost_cluster');
  cluster = await services.add(
    startIngestCluster({
      replicas: 3,
      redisUrl: redis.url,
      databaseUrl,
      readyTimeoutMs: 90_000,
      env: {
        INGEST_INFLUX_URL: vm.url,
        INGEST_INFLUX_API: 'v2',
        INGEST_INFLUX_BUCKET: 'outpost',
        INGEST_CONNECTIVITY_FLUSH_MS: '200',
        INGEST_OTA_TICK_MS: '200',
      },
    }),
  );
  replicas = cluster.replicas;
  apis = replicas.map((r) => apiClient(r.url, cluster.adminToken));
}, 240_000);

const mqttUrl = (i: number) => replicas[i]!.mqttUrl;

async function exportedCount(deviceId: string, metric: string): Promise<number> {
  await vm.flush();
  const series = await vm.exportSeries(`{__name__="${metric}_value",device="${deviceId}"}`);
  return series.reduce((n, s) => n + s.values.length, 0);
}

async function connectivity(api: ApiClient, deviceId: string) {
  const res = await api('GET', `/api/v1/devices/${deviceId}`);
  return res.body.connectivity as { online: boolean; disconnectReason: string | null };
}

describe('cluster mode: three replicas over Redis and PostgreSQL', () => {
  it('keeps a device online when it moves to another replica', async () => {
    const api = apis[0]!;
    const device = await enroll(api, 'mv-1');
    const onA = await connectDevice(mqttUrl(0), device);
    await waitUntil(async () => (await connectivity(api, 'mv-1')).online, 'mv-1 online', 20_000);
    // The same client id connects to replica B: aedes closes the session on A (a takeover
    // across replicas), which must not record the device offline.
    const closedOnA = new Promise<void>((r) => onA.once('close', () => r()));
    const onB = await connectDevice(mqttUrl(1), device);
    await closedOnA;
    // Several connectivity flushes (200 ms) of both replicas later, still online.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 200));
      expect(await connectivity(api, 'mv-1')).toMatchObject({ online: true });
    }
    // The connection drops and the device is back on replica C at once: the late
    // "connection lost" on B must not win over C's "online".
    onB.stream.destroy();
    const onC = await connectDevice(mqttUrl(2), device);
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 200));
      expect(await connectivity(api, 'mv-1')).toMatchObject({ online: true });
    }
    await onC.endAsync();
    onA.end(true);
    onB.end(true);
    await waitUntil(
      async () => !(await connectivity(api, 'mv-1')).online,
      'mv-1 offline after a clean disconnect',
      20_000,
    );
  });

  it('disconnects a device on replica B within 1 s of its revocation through replica A', async () => {
    const device = await enroll(apis[0]!, 'rv-1');
    const client = await connectDevice(mqttUrl(1), device);
    const closed = new Promise<number>((resolve) =>
      client.once('close', () => resolve(performance.now())),
    );
    // Replica A (0) must know nothing local about the session: the disconnect has to come
    // through the cluster bus.
    const sentAt = performance.now();
    const revoked = await apis[0]!('POST', '/api/v1/devices/rv-1/revoke');
    const answeredAt = performance.now();
    expect(revoked.status).toBe(200);
    const closedAt = await closed;
    const latencyMs = closedAt - answeredAt;
    process.stdout.write(
      `revocation fan-out: closed ${(closedAt - sentAt).toFixed(1)} ms after the request, ` +
        `${latencyMs.toFixed(1)} ms after the reply\n`,
    );
    expect(latencyMs).toBeLessThanOrEqual(1000);
    // And new sessions are refused on every replica.
    for (const i of [0, 1, 2]) {
      await expect(connectDevice(mqttUrl(i), device)).rejects.toThrow();
    }
  });

  it('delivers a config change made through replica A to the device on replica B', async () => {
    const device = await enroll(apis[0]!, 'cfg-1');
    const client = await connectDevice(mqttUrl(1), device);
    const commands = collectCommands(client, device);
    await client.subscribeAsync(topics.commands(device.id), { qos: 1 });
    // Subscribing sends nothing: no desired config yet.
    const patched = await apis[0]!('PATCH', '/api/v1/devices/cfg-1', {
      desiredConfig: { interval_s: 30 },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const config = await waitUntil(
      () => commands.find((c) => c.type === 'config.desired'),
      'config.desired on replica B',
      20_000,
    );
    expect(config).toMatchObject({ type: 'config.desired', config: { interval_s: 30 } });
    // Sent once, by the replica holding the session.
    await new Promise((r) => setTimeout(r, 1000));
    expect(commands.filter((c) => c.type === 'config.desired')).toHaveLength(1);

    // A release key registered through replica A: keys.release reaches the device on B.
    const releaseKey = await generateKeyPair('Ed25519');
    const registered = await apis[0]!('POST', '/api/v1/release-keys', {
      publicKey: releaseKey.publicJwk,
    });
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
    const keys = await waitUntil(
      () => commands.find((c) => c.type === 'keys.release'),
      'keys.release on replica B',
      20_000,
    );
    expect(JSON.stringify(keys)).toContain(releaseKey.kid);
    await client.endAsync();
  });

  it('delivers a QoS 1 command queued while the device was offline after it reconnects to another replica', async () => {
    const api = apis[0]!;
    const device = await enroll(api, 'off-1');
    // A persistent session on replica B (1), subscribed to its commands, then gone.
    const first = await connectDevice(mqttUrl(1), device, { clean: false });
    await first.subscribeAsync(topics.commands(device.id), { qos: 1 });
    await first.endAsync();
    await waitUntil(
      async () => !(await connectivity(api, 'off-1')).online,
      'off-1 offline',
      20_000,
    );

    // A rollout through replica A offers firmware to the offline device.
    const releaseKey = await generateKeyPair('Ed25519');
    const registered = await api('POST', '/api/v1/release-keys', {
      publicKey: releaseKey.publicJwk,
    });
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
    const firmware = await makeFirmware(releaseKey, { bytes: Buffer.alloc(4096, 1) });
    const stored = await uploadFirmware(replicas[0]!.url, firmware, cluster.adminToken);
    expect(stored.status, JSON.stringify(stored.body)).toBe(201);
    const rollout = await api('POST', '/api/v1/rollouts', {
      firmwareId: stored.body.id,
      target: { devices: ['off-1'] },
      waves: [100],
      minDevices: 1,
    });
    expect(rollout.status, JSON.stringify(rollout.body)).toBe(201);
    const rolloutId = rollout.body.id as string;
    await waitUntil(
      async () => {
        const r = await api('GET', `/api/v1/rollouts/${rolloutId}`);
        return (r.body.devices as { state: string }[]).some((d) => d.state === 'offered');
      },
      'the offer sent while off-1 is offline',
      30_000,
    );

    // The device comes back on replica C (2), resuming its session without subscribing
    // again: only the session kept in Redis can bring the offer.
    const again = await connectDevice(mqttUrl(2), device, { clean: false });
    const commands = collectCommands(again, device);
    const offer = await waitUntil(
      () => commands.find((c) => c.type === 'ota.offer'),
      'the queued ota.offer on replica C',
      20_000,
    );
    expect(offer).toMatchObject({ type: 'ota.offer', rolloutId });
    await again.endAsync();

    // The artifact uploaded through replica A downloads through replica C: the replicas share
    // the firmware directory (INGEST_FIRMWARE_DIR), as they must in production.
    const { token } = await signDeviceJwt(device.pair.privateJwk, { deviceId: device.id });
    const path = new URL((offer as { url: string }).url).pathname;
    const download = await fetch(`${replicas[2]!.url}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(firmware.bytes)).toBe(true);
  });

  it('shows on replica A’s stream a reading accepted by replica C, once', async () => {
    const device = await enroll(apis[0]!, 'sse-1');
    const stream = await openStream(
      replicas[0]!.url,
      cluster.adminToken,
      'types=readings&device=sse-1',
    );
    try {
      const client = await connectDevice(mqttUrl(2), device);
      const warmup = await signedBatches(device.pair, 'warm', 40, 1, 'sseboot01');
      // Replica C learns within a moment that A wants readings; until then it sends none.
      let sent = 0;
      await waitUntil(
        async () => {
          if (sent < warmup.length)
            await publishUntilAcked(client, topics.telemetry(device.id), warmup[sent++]!);
          return stream.events.some((e) => e.event === 'readings');
        },
        'a reading from replica C on replica A’s stream',
        20_000,
      );
      const [batch] = await signedBatches(device.pair, 'once', 1, 5, 'sseboot02');
      await publishUntilAcked(client, topics.telemetry(device.id), batch!);
      const onceReadings = () =>
        stream.events
          .filter((e) => e.event === 'readings')
          .flatMap((e) => (e.data as { readings: { metric: string; value: number }[] }).readings)
          .filter((r) => r.metric === 'once');
      await waitUntil(() => onceReadings().length >= 5, 'the five readings', 10_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(onceReadings().map((r) => r.value)).toEqual([0, 1, 2, 3, 4]);
      await client.endAsync();
    } finally {
      stream.close();
    }
  });

  it('stores every acked reading exactly once when a replica is killed mid-stream', async () => {
    const DEVICES = 6;
    const BATCHES = 60;
    const SIZE = 20;
    const devices: ClusterDevice[] = [];
    for (let i = 0; i < DEVICES; i++) devices.push(await enroll(apis[0]!, `kill-${i}`));
    const payloads = await Promise.all(
      devices.map((d, i) => signedBatches(d.pair, 'level', BATCHES, SIZE, `killboot${i}`)),
    );
    // Through the balancer, reconnecting by themselves like real devices.
    const clients: MqttClient[] = [];
    for (const d of devices) {
      clients.push(
        await connectDevice(cluster.mqtt.url('mqtt'), d, {
          reconnectPeriod: 300,
          connectTimeout: 5000,
        }),
      );
    }
    const byPort = new Map(replicas.map((r, i) => [`127.0.0.1:${r.mqttPort}`, i]));
    const spread = [...cluster.mqtt.connections()].filter(([, n]) => n > 0);
    expect(spread.length, 'devices spread over the replicas').toBeGreaterThanOrEqual(2);
    const victim = byPort.get(spread.sort((a, b) => b[1] - a[1])[0]![0])!;

    const acked = devices.map(() => new Set<number>());
    let killed = false;
    const killAt = Math.floor((DEVICES * BATCHES) / 3);
    const totalAcked = () => acked.reduce((n, s) => n + s.size, 0);
    let kill: Promise<void> | undefined;
    await Promise.all(
      devices.map(async (d, i) => {
        for (let b = 0; b < BATCHES; b++) {
          await publishUntilAcked(clients[i]!, topics.telemetry(d.id), payloads[i]![b]!);
          acked[i]!.add(b);
          if (!killed && totalAcked() >= killAt) {
            killed = true;
            kill = replicas[victim]!.kill9();
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      }),
    );
    await kill;
    expect(killed).toBe(true);
    for (const c of clients) await c.endAsync(true);
    expect(totalAcked()).toBe(DEVICES * BATCHES);

    // The dead replica's outbox holds what it acked last: it comes back on its data dir
    // and drains it.
    await replicas[victim]!.restart();
    for (const d of devices) {
      await waitUntil(
        async () => (await exportedCount(d.id, 'level')) === BATCHES * SIZE,
        `all ${BATCHES * SIZE} readings of ${d.id} in victoria-metrics`,
        90_000,
      );
    }
    // Exactly once: one sample per reading, no more.
    for (const d of devices) {
      await vm.flush();
      const series = await vm.exportSeries(`{__name__="level_value",device="${d.id}"}`);
      const values = series.flatMap((s) => s.values);
      expect(values).toHaveLength(BATCHES * SIZE);
      expect(new Set(values).size).toBe(BATCHES * SIZE);
    }
  }, 300_000);

  it('recovers when Redis restarts: readiness shows the outage, then connections and revocations work again', async () => {
    const before = await enroll(apis[0]!, 'rr-1');
    const revokedDuringOutage = await enroll(apis[0]!, 'rr-0');
    const stillOnC = await connectDevice(mqttUrl(2), revokedDuringOutage);
    const closedAfterOutage = new Promise<void>((r) => stillOnC.once('close', () => r()));
    await redis.process.stop();
    await waitUntil(
      async () => {
        const codes = await Promise.all(
          replicas.map((r) => fetch(`${r.url}/readyz`).then((res) => res.status)),
        );
        return codes.every((c) => c === 503);
      },
      'every replica not ready while Redis is down',
      20_000,
    );
    // What does not need Redis keeps working: the API, and revocation in the registry.
    expect((await apis[1]!('GET', '/api/v1/devices/rr-1')).status).toBe(200);
    expect((await apis[0]!('POST', '/api/v1/devices/rr-0/revoke')).status).toBe(200);

    await redis.restart();
    await waitUntil(
      async () => {
        const codes = await Promise.all(
          replicas.map((r) => fetch(`${r.url}/readyz`).then((res) => res.status)),
        );
        return codes.every((c) => c === 200);
      },
      'every replica ready again',
      30_000,
    );
    // The revocation the bus could not carry is caught up from the registry.
    await closedAfterOutage;

    // New connections through the balancer, and telemetry, work again.
    const client = await waitUntil(
      () => connectDevice(cluster.mqtt.url('mqtt'), before).catch(() => undefined),
      'a connection after Redis came back',
      30_000,
    );
    const [batch] = await signedBatches(before.pair, 'after', 1, 3, 'rrboot01');
    await publishUntilAcked(client, topics.telemetry(before.id), batch!);
    await client.endAsync();

    // Revocation fan-out works again: a device on replica C revoked through replica A.
    const other = await enroll(apis[0]!, 'rr-2');
    const victim = await connectDevice(mqttUrl(2), other);
    const closed = new Promise<number>((r) => victim.once('close', () => r(performance.now())));
    const sentAt = performance.now();
    const revoked = await apis[0]!('POST', '/api/v1/devices/rr-2/revoke');
    const answeredAt = performance.now();
    expect(revoked.status).toBe(200);
    const closedAt = await closed;
    const latencyMs = closedAt - answeredAt;
    process.stdout.write(
      `revocation fan-out after the Redis restart: closed ${(closedAt - sentAt).toFixed(1)} ms ` +
        `after the request, ${latencyMs.toFixed(1)} ms after the reply\n`,
    );
    expect(latencyMs).toBeLessThanOrEqual(1000);
  }, 180_000);
});

describe('cluster mode: a replica killed for good', () => {
  it('records its devices offline (replica_lost) on a survivor, except one that reconnected there', async () => {
    // A cluster of its own: short leases and immediate adoption, which the drills above must
    // not have (the replica they kill comes back and drains its own outbox).
    const ownRedis = await services.add(startRedis());
    const database = 'outpost_cluster_lost';
    const duo = await services.add(
      startIngestCluster({
        replicas: 2,
        redisUrl: ownRedis.url,
        databaseUrl: await postgres.createDatabase(database),
        readyTimeoutMs: 90_000,
        env: {
          INGEST_CONNECTIVITY_FLUSH_MS: '200',
          INGEST_LEASE_TTL_MS: '4000',
          INGEST_OUTBOX_ADOPT_AFTER_S: '0',
          INGEST_OUTBOX_ADOPT_SCAN_MS: '200',
        },
      }),
    );
    const [victim, survivor] = duo.replicas as [IngestHandle, IngestHandle];
    const api = apiClient(survivor.url, duo.adminToken);
    const moving = await enroll(api, 'lost-mv');
    const gone = await enroll(api, 'lost-gone');
    const stream = await openStream(survivor.url, duo.adminToken, 'types=status');
    try {
      const clients = [
        await connectDevice(victim.mqttUrl, moving),
        await connectDevice(victim.mqttUrl, gone),
      ];
      await waitUntil(
        async () =>
          (await connectivity(api, 'lost-mv')).online &&
          (await connectivity(api, 'lost-gone')).online,
        'both devices online through the victim',
        20_000,
      );

      await victim.kill9();
      for (const c of clients) c.end(true);
      // One device is back at once through the balancer, which skips the dead replica; the
      // survivor records it under its own id before the victim's lease has even lapsed.
      const back = await connectDevice(duo.mqtt.url('mqtt'), moving);
      await waitUntil(
        async () =>
          (
            await postgres.sql("SELECT replica FROM devices WHERE id = 'lost-mv'", database)
          ).trim() === 'replica-1',
        'lost-mv recorded online by the survivor',
        20_000,
      );
      expect(await connectivity(api, 'lost-gone')).toMatchObject({ online: true });

      // The survivor adopts the victim's outbox and records the victim's devices offline.
      await waitUntil(
        async () => (await connectivity(api, 'lost-gone')).disconnectReason === 'replica_lost',
        'lost-gone offline (replica_lost)',
        30_000,
      );
      expect(await connectivity(api, 'lost-gone')).toMatchObject({ online: false });
      const statuses = () =>
        stream.events
          .filter((e) => e.event === 'status')
          .map((e) => e.data as { deviceId: string; online: boolean; reason: string | null });
      await waitUntil(
        () => statuses().some((s) => s.deviceId === 'lost-gone' && s.reason === 'replica_lost'),
        'the status event on the stream',
        10_000,
      );
      // The moved device is untouched, over several flushes.
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 200));
        expect(await connectivity(api, 'lost-mv')).toMatchObject({
          online: true,
          disconnectReason: null,
        });
      }
      expect(statuses().filter((s) => s.deviceId === 'lost-mv' && !s.online)).toEqual([]);
      await back.endAsync();
    } finally {
      stream.close();
    }
  }, 180_000);
});
