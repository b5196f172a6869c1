import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import type { KeyPair } from '@outpost/signing/keys';
import { startInfluxDb1 } from '@outpost/test-kit/influxdb1';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { startVictoriaMetrics } from '@outpost/test-kit/victoria-metrics';
import { useServices } from '@outpost/test-kit/vitest';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { connectDevice, signedBatches } from './support/cluster-devices.js';
import { apiClient, enrollDevice, waitUntil } from './support/ingest-app.js';

// Real parts: the built ingest as a separate process (as deployed), victoria-metrics and
// InfluxDB 1.x as real stores, mqtt.js over TCP, kill -9 for crashes. Nothing mocked.

const systemClock = { now: () => Date.now() };

async function setUp(ingest: IngestHandle, gatewayId: string) {
  const api = apiClient(ingest.url, ingest.adminToken);
  const pair = await enrollDevice({ api, clock: systemClock }, gatewayId, { kind: 'gateway' });
  return { api, pair };
}

/** A device's MQTT session on the ingest, with a fresh device JWT. */
function connectAs(ingest: IngestHandle, deviceId: string, pair: KeyPair): Promise<MqttClient> {
  return connectDevice(ingest.mqttUrl, { id: deviceId, pair });
}

/** Signed batches, by default starting two hours ago (see support/cluster-devices.ts). */
const batches = (
  pair: KeyPair,
  metric: string,
  n: number,
  size: number,
  boot: string,
  startAgoS = 7200,
) => signedBatches(pair, metric, n, size, boot, startAgoS);

async function storedCount(api: ReturnType<typeof apiClient>, deviceId: string, metric: string) {
  const res = await api(
    'GET',
    `/api/v1/devices/${deviceId}/telemetry?metric=${metric}&from=-1d&to=now&limit=10000`,
  );
  return ((res.body.points as unknown[] | undefined) ?? []).length;
}

describe('ingest durability (separate processes)', () => {
  const services = useServices();

  it('loses no acknowledged reading when killed with SIGKILL right after acking', async () => {
    const ingest = await services.add(startIngest());
    const { api, pair } = await setUp(ingest, 'gw-crash');
    const payloads = await batches(pair, 'crash', 200, 20, 'crashboot');
    const client = await connectAs(ingest, 'gw-crash', pair);
    const acked = new Set<number>();
    // Publish with a window of 16 in flight; kill the service after 60 acks while more
    // are in flight.
    let next = 0;
    let killed = false;
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (next < payloads.length && next - acked.size < 16 && !killed) {
          const i = next++;
          client.publish(topics.telemetry('gw-crash'), payloads[i]!, { qos: 1 }, (err) => {
            if (!err) acked.add(i);
            if (acked.size >= 60 && !killed) {
              killed = true;
              void ingest.kill9().then(() => resolve());
            } else pump();
          });
        }
      };
      pump();
    });
    client.end(true);
    const ackedReadings = acked.size * 20;
    expect(acked.size).toBeGreaterThanOrEqual(60);
    await ingest.restart();
    // Every acked batch is stored (batches in flight at the kill may be stored too).
    const stored = await waitUntil(
      async () => {
        const n = await storedCount(api, 'gw-crash', 'crash');
        return n >= ackedReadings && n;
      },
      `${ackedReadings} acked readings after the restart`,
      20_000,
    );
    expect(stored % 20).toBe(0);
    // The sender resends what it had no ack for: stored exactly once in the end.
    const again = await connectAs(ingest, 'gw-crash', pair);
    for (const [i, p] of payloads.entries()) {
      if (!acked.has(i)) await again.publishAsync(topics.telemetry('gw-crash'), p, { qos: 1 });
    }
    await again.endAsync();
    await waitUntil(
      async () => (await storedCount(api, 'gw-crash', 'crash')) === 4000,
      'all 4,000 readings stored once',
      20_000,
    );
  });

  it('writes through to victoria-metrics (v2 API) and loses nothing while it is down for 60 s', async () => {
    const vm = await services.add(startVictoriaMetrics({ args: ['-dedup.minScrapeInterval=1ms'] }));
    const ingest = await services.add(
      startIngest({
        env: {
          INGEST_INFLUX_URL: vm.url,
          INGEST_INFLUX_API: 'v2',
          INGEST_INFLUX_BUCKET: 'outpost',
        },
      }),
    );
    const { pair } = await setUp(ingest, 'gw-vm');
    const client = await connectAs(ingest, 'gw-vm', pair);
    const before = await batches(pair, 'level', 10, 50, 'vmboot001');
    for (const p of before) await client.publishAsync(topics.telemetry('gw-vm'), p, { qos: 1 });
    const exported = async () => {
      await vm.flush();
      const series = await vm.exportSeries('{__name__="level_value",device="gw-vm"}');
      return series.reduce((n, s) => n + s.values.length, 0);
    };
    await waitUntil(
      async () => (await exported()) === 500,
      '500 readings in victoria-metrics',
      20_000,
    );

    // The store goes away (stopped, so it keeps what it acknowledged: a SIGKILL loses
    // victoria-metrics' own unflushed buffers); the service keeps acking into its outbox.
    await vm.process.stop();
    const during = await batches(pair, 'level', 20, 50, 'vmboot002', 3600);
    for (const p of during) await client.publishAsync(topics.telemetry('gw-vm'), p, { qos: 1 });
    await client.endAsync();
    await new Promise((r) => setTimeout(r, 60_000));
    const api = apiClient(ingest.url, ingest.adminToken);
    const backlog = (await api('GET', '/api/v1/telemetry/outbox')).body;
    expect(backlog.pendingPoints).toBe(1000);
    expect(backlog.oldestAgeS).toBeGreaterThanOrEqual(59);
    await vm.restart();
    await waitUntil(
      async () => (await exported()) === 1500,
      'all 1,500 readings stored once',
      60_000,
    );
    await waitUntil(
      async () => (await api('GET', '/api/v1/telemetry/outbox')).body.pendingPoints === 0,
      'backlog drained',
    );
  }, 180_000);

  it('writes to InfluxDB 1.x (v1 API) and queries back through InfluxQL', async () => {
    const influx = await services.add(startInfluxDb1());
    await influx.createDatabase('outpost');
    const ingest = await services.add(
      startIngest({
        env: {
          INGEST_INFLUX_URL: influx.url,
          INGEST_INFLUX_API: 'v1',
          INGEST_INFLUX_DATABASE: 'outpost',
        },
      }),
    );
    const { api, pair } = await setUp(ingest, 'gw-influx');
    await api('POST', '/api/v1/devices/import', [
      { id: 'th-influx', gateway: 'gw-influx', tags: { room: 'boiler' } },
    ]);
    const client = await connectAs(ingest, 'gw-influx', pair);
    const t0 = Math.floor(Date.now() / 1000) - 120;
    const jws = await signBatch(pair.privateJwk, {
      v: 1,
      boot: 'influxboot',
      seq: [1, 4],
      records: [
        { bt: t0, n: 'th-influx/temperature', u: 'Cel', v: 20 },
        { n: 'th-influx/temperature', u: 'Cel', v: 22, t: 30 },
        { n: 'th-influx/door', vb: true, t: 30 },
        { n: 'th-influx/mode', vs: 'eco', t: 30 },
      ],
    });
    await client.publishAsync(topics.telemetry('gw-influx'), jws, { qos: 1 });
    await client.endAsync();
    await waitUntil(
      async () => (await storedCount(api, 'th-influx', 'temperature')) === 2,
      'two temperatures',
      20_000,
    );
    const raw = await influx.query(
      'SELECT "value","t_room","unit" FROM "temperature" WHERE "device"=\'th-influx\'',
      'outpost',
    );
    expect(JSON.stringify(raw)).toContain('boiler');
    const mean = await api(
      'GET',
      '/api/v1/devices/th-influx/telemetry?metric=temperature&from=-1h&to=now&every=1h&fn=mean',
    );
    expect(
      (mean.body.points as { value: number | null }[])
        .map((p) => p.value)
        .filter((v) => v !== null),
    ).toEqual([21]);
    const latest = await api('GET', '/api/v1/devices/th-influx/latest');
    expect(latest.body.metrics).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ metric: 'door', value: true }),
        expect.objectContaining({ metric: 'mode', value: 'eco' }),
        expect.objectContaining({ metric: 'temperature', value: 22, unit: 'Cel' }),
      ]),
    );
  });
});
