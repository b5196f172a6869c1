import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { type PostgresHandle, startPostgres } from '@outpost/test-kit/postgres';
import {
  startVictoriaMetrics,
  type VictoriaMetricsHandle,
} from '@outpost/test-kit/victoria-metrics';
import { useServices } from '@outpost/test-kit/vitest';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import type { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseContract } from '../src/cluster/lease.contract.js';
import { LEASE_NAMES } from '../src/cluster/lease.js';
import { PostgresLeases } from '../src/cluster/postgres-lease.js';
import { METRICS } from '../src/injection.js';
import type { DurableOutbox } from '../src/telemetry/durable-outbox.js';
import { TELEMETRY_OUTBOX } from '../src/telemetry/telemetry.service.js';
import { LEASE_TTL_MS, type Replica, TestCluster } from './support/cluster-leases.js';
import { makeFirmware, uploadFirmware } from './support/firmware.js';
import { enrollDevice, enrollWithReply, waitUntil } from './support/ingest-app.js';
import { SimDevice } from './support/ota-device.js';
import { webhookReceiver } from './support/webhook-receiver.js';

// Real: PostgreSQL (leases, registry, OTA and alert stores shared by the replicas),
// VictoriaMetrics (stopped and restarted) for the survivor drain, three ingest apps in this
// process (Nest/Fastify, aedes on TCP, durable outbox files in one shared directory),
// simulated devices over MQTT, a node:http webhook receiver. A replica "dies" by abandoning
// its leases (not renewed, not released: they lapse after the TTL) and stopping.
// Time: one TestClock for all replicas (soak and silence); leases run on real time.

const services = useServices();
let postgres: PostgresHandle;
let vm: VictoriaMetricsHandle;

beforeAll(async () => {
  postgres = await services.add(startPostgres());
  vm = await services.add(startVictoriaMetrics());
});

/** Long enough for a lease to lapse and be taken on a loaded machine. */
const TAKEOVER_MS = LEASE_TTL_MS * 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

leaseContract('PostgresLeases', async () => {
  const url = await postgres.createDatabase('lease_contract');
  const made: PostgresLeases[] = [];
  let replicas = 0;
  return {
    async replica() {
      const leases = new PostgresLeases({
        url,
        holder: `contract-${replicas++}/x`,
        ttlMs: LEASE_TTL_MS,
        logger: pino({ level: 'silent' }),
      });
      await leases.migrate();
      made.push(leases);
      return leases;
    },
    async close() {
      for (const leases of made) await leases.close();
    },
  };
});

describe('rollouts with three replicas', () => {
  let cluster: TestCluster;
  const sims: SimDevice[] = [];

  afterAll(async () => {
    await Promise.allSettled(sims.map((s) => s.close()));
    await cluster?.close();
  });

  it('one replica offers each wave once; after its death another completes the rollout', async () => {
    cluster = await TestCluster.create(postgres, 'cluster_rollouts');
    for (const id of ['r1', 'r2', 'r3']) await cluster.start(id);
    const [first] = cluster.replicas as [Replica];
    const release = await generateKeyPair('Ed25519');
    expect(
      (await first.api('POST', '/api/v1/release-keys', { publicKey: release.publicJwk })).status,
    ).toBe(201);
    const firmware = await makeFirmware(release, { version: '1.1.0' });
    const stored = await uploadFirmware(first.url, firmware);
    expect(stored.status, JSON.stringify(stored.body)).toBe(201);

    // Every device listens on every replica: whichever holds the lease, its offers arrive.
    const ids = Array.from({ length: 6 }, (_, i) => `c-${i}`);
    const byReplica = new Map<string, SimDevice[]>();
    for (const id of ids) {
      const { pair, reply } = await enrollWithReply(first, id, { tags: { fleet: 'c' } });
      for (const r of cluster.replicas) {
        const sim = new SimDevice(r, id, pair, reply);
        await sim.connect();
        sims.push(sim);
        byReplica.set(r.id, [...(byReplica.get(r.id) ?? []), sim]);
      }
    }
    const offersOf = (id: string) =>
      sims.filter((s) => s.id === id).reduce((n, s) => n + s.offers.length, 0);

    const created = await cluster.replicas[1]!.api('POST', '/api/v1/rollouts', {
      firmwareId: stored.body.id,
      target: { tags: { fleet: 'c' } },
      waves: [50, 100],
      soakSeconds: 60,
      abortFailureRate: 0.5,
      minDevices: 3,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const rolloutId = created.body.id as string;
    const get = async (via: Replica) =>
      (await via.api('GET', `/api/v1/rollouts/${rolloutId}`)).body as {
        status: string;
        waves: { phase: string }[];
        totals: Record<string, number>;
        devices: { deviceId: string; wave: number; state: string }[];
      };

    const soaking = await waitUntil(
      async () => {
        const r = await get(first);
        return r.waves[0]?.phase === 'soaking' ? r : undefined;
      },
      'wave 1 to finish and soak',
      30_000,
    );
    const wave1 = soaking.devices.filter((d) => d.wave === 0).map((d) => d.deviceId);
    expect(wave1).toHaveLength(3);
    for (const id of ids) expect(offersOf(id), id).toBe(wave1.includes(id) ? 1 : 0);

    // The holder dies with wave 2 still to start.
    const holder = await cluster.holder(LEASE_NAMES.otaRollouts);
    expect(holder).toBeDefined();
    for (const sim of byReplica.get(holder!) ?? []) await sim.close();
    await cluster.kill(holder!);
    const survivor = cluster.replicas[0]!;
    await waitUntil(
      async () => {
        const now = await cluster.holder(LEASE_NAMES.otaRollouts);
        return now !== undefined && now !== holder;
      },
      'another replica to take the rollouts lease',
      TAKEOVER_MS,
    );

    cluster.clock.advance(61_000);
    const done = await waitUntil(
      async () => {
        const r = await get(survivor);
        return r.status === 'completed' ? r : undefined;
      },
      'the rollout to complete',
      60_000,
    );
    expect(done.totals).toMatchObject({ devices: 6, succeeded: 6, failed: 0 });
    expect(done.waves.map((w) => w.phase)).toEqual(['done', 'done']);
    // Each device was offered exactly once, by whichever replica held the lease then.
    for (const id of ids) expect(offersOf(id), id).toBe(1);
  }, 180_000);
});

/** Bare SenML over HTTP (the device's policy allows unsigned payloads). */
async function postReadings(
  via: Replica,
  deviceId: string,
  pair: KeyPair,
  records: Record<string, unknown>[],
) {
  const { token } = await signDeviceJwt(pair.privateJwk, {
    deviceId,
    now: () => via.clock.now() / 1000,
  });
  const res = await via.api('POST', '/api/v1/telemetry', JSON.stringify(records), {
    token,
    contentType: 'application/senml+json',
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res;
}

async function enrollUnsigned(via: Replica, deviceId: string, tags: Record<string, string> = {}) {
  const pair = await enrollDevice(via, deviceId, { tags });
  const patched = await via.api('PATCH', `/api/v1/devices/${deviceId}`, {
    policy: { payloadSigning: 'optional' },
  });
  expect(patched.status, JSON.stringify(patched.body)).toBe(200);
  return pair;
}

describe('offline alerts with three replicas', () => {
  let cluster: TestCluster;
  let hook: Awaited<ReturnType<typeof webhookReceiver>>;

  afterAll(async () => {
    await cluster?.close();
    await hook?.close();
  });

  it('fire exactly once across the replicas, and keep firing once after the holder dies', async () => {
    hook = await webhookReceiver();
    cluster = await TestCluster.create(postgres, 'cluster_alerts');
    for (const id of ['a1', 'a2', 'a3']) await cluster.start(id);
    const [a1] = cluster.replicas as [Replica];
    const off1 = await enrollUnsigned(a1, 'off-1', { site: 'far' });
    const off2 = await enrollUnsigned(a1, 'off-2', { site: 'far' });
    const rule = await a1.api('POST', '/api/v1/alert-rules', {
      kind: 'offline',
      after: '1m',
      scope: { tags: { site: 'far' } },
      severity: 'critical',
      channels: [{ type: 'webhook', url: hook.url }],
    });
    expect(rule.status, JSON.stringify(rule.body)).toBe(201);

    /** Posts a reading to `via` until the replicas' shared activity record has it. */
    const hear = async (via: Replica, device: string, pair: KeyPair) => {
      const since = via.clock.now();
      await waitUntil(
        async () => {
          await postReadings(via, device, pair, [
            { bt: Math.floor(via.clock.now() / 1000), n: 'temperature', v: 20 },
          ]);
          await sleep(300);
          const seen = await postgres.sql(
            `SELECT seen_at FROM alert_activity WHERE device = '${device}'`,
            'cluster_alerts',
          );
          return seen.trim() !== '' && Number(seen.trim()) >= since;
        },
        `${device} heard`,
        30_000,
      );
    };

    const holder = await waitUntil(
      () => cluster.holder(LEASE_NAMES.alertTimers),
      'an alert timers holder',
      TAKEOVER_MS,
    );
    const others = cluster.replicas.filter((r) => r.id !== holder);
    // Heard by a replica that does not hold the timers: the holder must learn of it.
    await hear(others[0]!, 'off-1', off1);

    cluster.clock.advance(2 * 60_000);
    await waitUntil(() => hook.of('off-1').length > 0, 'off-1 to fire', 30_000);

    // off-2 is heard now, so it goes silent only after the holder's death.
    await hear(others[1]!, 'off-2', off2);
    await cluster.kill(holder);
    await waitUntil(
      async () => {
        const now = await cluster.holder(LEASE_NAMES.alertTimers);
        return now !== undefined && now !== holder;
      },
      'another replica to take the alert timers lease',
      TAKEOVER_MS,
    );
    cluster.clock.advance(2 * 60_000);
    await waitUntil(() => hook.of('off-2').length > 0, 'off-2 to fire', 30_000);

    // Several more timer passes on every survivor: nothing fires again.
    await sleep(1_000);
    expect(hook.of('off-1')).toEqual(['alert.firing']);
    expect(hook.of('off-2')).toEqual(['alert.firing']);
    const listed = await cluster.replicas[0]!.api(
      'GET',
      `/api/v1/alerts?rule=${rule.body.id as string}`,
    );
    const items = listed.body.items as { device: string; state: string }[];
    expect(items.map((a) => a.device).sort()).toEqual(['off-1', 'off-2']);
    expect(items.every((a) => a.state === 'firing')).toBe(true);
  }, 180_000);
});

describe('survivor drain of a dead replica’s outbox', () => {
  let cluster: TestCluster;
  let pendingStart: Promise<unknown> | undefined;

  afterAll(async () => {
    // A replica still waiting for its lease joins the cluster once it has it; close it too.
    if (pendingStart) await Promise.race([pendingStart.catch(() => {}), sleep(30_000)]);
    await cluster?.close();
  });

  it('drains every point into VictoriaMetrics exactly once; the returning owner waits', async () => {
    cluster = await TestCluster.create(postgres, 'cluster_outbox', {
      INGEST_INFLUX_URL: vm.url,
      INGEST_INFLUX_API: 'v2',
      INGEST_INFLUX_BUCKET: 'telemetry',
      INGEST_OUTBOX_ADOPT_AFTER_S: '0',
      INGEST_OUTBOX_ADOPT_SCAN_MS: '200',
    });
    for (const id of ['x', 'y', 'z']) await cluster.start(id);
    const x = cluster.replica('x');
    const pair = await enrollUnsigned(x, 'drain-1');

    await vm.process.stop();
    const BATCHES = 20;
    const PER_BATCH = 50;
    const base = Math.floor(Date.now() / 1000) - 86_400;
    for (let b = 0; b < BATCHES; b++) {
      const records = Array.from({ length: PER_BATCH }, (_, i) => ({
        n: 'adopted',
        v: b * PER_BATCH + i,
        t: base + b * PER_BATCH + i,
      }));
      const res = await postReadings(x, 'drain-1', pair, records);
      expect(res.body.outcome).toBe('accepted');
    }
    const outbox = x.app.get(TELEMETRY_OUTBOX) as DurableOutbox;
    expect(outbox.stats().pendingPoints).toBe(BATCHES * PER_BATCH);

    // x dies for good; what it accepted is only in its file.
    await cluster.kill('x');
    const file = join(cluster.outboxDir, 'x.db');
    const db = new Database(file, { readonly: true, fileMustExist: true });
    const left = db.prepare('SELECT COALESCE(SUM(points), 0) AS n FROM batches').get() as {
      n: number;
    };
    db.close();
    expect(left.n).toBe(BATCHES * PER_BATCH);

    // A survivor adopts the file (the store is still down, so it cannot finish yet) ...
    const adopter = await waitUntil(
      async () => {
        const h = await cluster.holder(LEASE_NAMES.outbox('x'));
        return h === 'y' || h === 'z' ? h : undefined;
      },
      'a survivor to adopt the outbox of x',
      TAKEOVER_MS,
    );
    // ... and x comes back meanwhile: it waits for its lease instead of opening the file.
    let returned: Replica | undefined;
    const returning = cluster.start('x');
    pendingStart = returning;
    void returning.then((r) => {
      returned = r;
      return r;
    });
    await sleep(1_000);
    expect(returned).toBeUndefined();
    expect(await cluster.holder(LEASE_NAMES.outbox('x'))).toBe(adopter);

    await vm.restart();
    // The writers' backoffs run on the app clock, which only moves when told to.
    await waitUntil(
      () => {
        cluster.clock.advance(1_000);
        return !existsSync(file) || returned !== undefined;
      },
      'the drain',
      90_000,
    );
    const back = await returning;
    expect((back.app.get(TELEMETRY_OUTBOX) as DurableOutbox).stats()).toMatchObject({
      pendingBatches: 0,
      quarantinedBatches: 0,
    });
    expect(await cluster.holder(LEASE_NAMES.outbox('x'))).toBe('x');

    await vm.flush();
    const series = await vm.exportSeries('{__name__=~"adopted.*"}');
    expect(series).toHaveLength(1);
    const times = series[0]!.timestamps;
    expect(times).toHaveLength(BATCHES * PER_BATCH);
    expect(new Set(times).size).toBe(times.length);

    // Counted once, by the adopter only.
    let adoptedPoints = 0;
    for (const r of cluster.replicas) {
      const metric = (r.app.get(METRICS) as Registry).getSingleMetric(
        'outpost_ingest_outbox_adopted_points_total',
      );
      const value = (await metric?.get())?.values[0]?.value ?? 0;
      if (r.id !== adopter) expect(value, r.id).toBe(0);
      adoptedPoints += value;
    }
    expect(adoptedPoints).toBe(BATCHES * PER_BATCH);
  }, 180_000);
});
