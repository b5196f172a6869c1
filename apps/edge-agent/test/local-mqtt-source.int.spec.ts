import { connect as tcpConnect } from 'node:net';
import { findBinary } from '@outpost/test-kit/binaries';
import { type MosquittoHandle, startMosquitto } from '@outpost/test-kit/mosquitto';
import { runCommand, waitFor } from '@outpost/test-kit/process';
import { useServices } from '@outpost/test-kit/vitest';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalMqttSource } from '../src/sources/local-mqtt-source.js';
import type { SourceReading } from '../src/sources/source.js';
import { mqttSourceConfigSchema } from '../src/sources/source-config.js';

// Real parts: the embedded aedes listener on a TCP port of 127.0.0.1, mqtt.js and
// mosquitto_pub as clients over real sockets, and a real mosquitto for `connect` mode.

const NOW = Date.UTC(2026, 0, 1);
const clock = { now: () => NOW };
const MOSQUITTO_PUB = findBinary('mosquitto_pub');

const TOPICS = [
  { filter: 'sensors/+/senml', device: '{1}', payload: 'senml' },
  {
    filter: 'zigbee/+',
    device: '{1}',
    payload: 'json',
    map: { temperature: 'temperature', humidity: 'humidity' },
    units: { temperature: 'Cel', humidity: '%RH' },
  },
  { filter: 'sensors/+/+', device: '{1}', metric: '{2}', payload: 'number' },
];

const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

function collector() {
  const readings: SourceReading[] = [];
  return { readings, sink: (rs: SourceReading[]) => void readings.push(...rs) };
}

async function listener(extra: Record<string, unknown>, sink: (rs: SourceReading[]) => void) {
  const config = mqttSourceConfigSchema.parse({ listen: '127.0.0.1:0', topics: TOPICS, ...extra });
  const source = new LocalMqttSource(config, { sink, clock });
  await source.start();
  return source;
}

function connect(port: number, options: IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...options,
    });
    clients.push(client);
    client.once('connect', () => resolve(client));
    client.once('error', (err) => reject(err));
  });
}

function pub(
  port: number,
  topic: string,
  message: string,
  auth: string[] = ['-u', 'sensors', '-P', 's3cret'],
) {
  return runCommand(
    MOSQUITTO_PUB,
    [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-V',
      'mqttv311',
      '-q',
      '1',
      '-t',
      topic,
      '-m',
      message,
      ...auth,
    ],
    { check: false, timeoutMs: 10_000 },
  );
}

describe('embedded listener with local credentials', { timeout: 30_000 }, () => {
  const got = collector();
  let source: LocalMqttSource;
  let port: number;

  beforeAll(async () => {
    source = await listener(
      { users: [{ username: 'sensors', password: 's3cret' }], maxPayloadBytes: 1024 },
      got.sink,
    );
    port = source.address!.port;
  });

  afterAll(async () => {
    await source.stop();
  });

  it('maps number payloads published by mqtt.js', async () => {
    const client = await connect(port, { username: 'sensors', password: 's3cret' });
    await client.publishAsync('sensors/boiler-7/temperature', '21.5', { qos: 1 });
    await client.publishAsync('sensors/boiler-7/door', 'true', { qos: 0 });
    await waitFor(() => got.readings.length >= 2, { what: 'two readings', timeoutMs: 5_000 });
    expect(got.readings.slice(0, 2)).toEqual([
      { device: 'boiler-7', metric: 'temperature', time: NOW / 1000, value: 21.5 },
      { device: 'boiler-7', metric: 'door', time: NOW / 1000, value: true },
    ]);
  });

  it('maps JSON and SenML published by mosquitto_pub', async () => {
    got.readings.length = 0;
    const json = await pub(
      port,
      'zigbee/kitchen',
      '{"temperature":19.5,"humidity":51,"linkquality":88}',
    );
    expect(json.code).toBe(0);
    const senml = JSON.stringify([
      { bn: '', bt: NOW / 1000 - 5, n: 'pressure', u: 'hPa', v: 1013.2 },
    ]);
    expect((await pub(port, 'sensors/well-3/senml', senml)).code).toBe(0);
    await waitFor(() => got.readings.length >= 3, { what: 'three readings', timeoutMs: 5_000 });
    expect(got.readings).toEqual(
      expect.arrayContaining([
        { device: 'kitchen', metric: 'temperature', time: NOW / 1000, value: 19.5, unit: 'Cel' },
        { device: 'kitchen', metric: 'humidity', time: NOW / 1000, value: 51, unit: '%RH' },
        { device: 'well-3', metric: 'pressure', time: NOW / 1000 - 5, value: 1013.2, unit: 'hPa' },
      ]),
    );
  });

  it('counts bad payloads and unmatched topics, and keeps going', async () => {
    got.readings.length = 0;
    const before = source.stats();
    const client = await connect(port, { username: 'sensors', password: 's3cret' });
    await client.publishAsync('sensors/boiler-7/temperature', 'warm', { qos: 1 });
    await client.publishAsync('sensors/Boiler_7/temperature', '1', { qos: 1 }); // not a device id
    await client.publishAsync('zigbee/kitchen', '{"temperature":', { qos: 1 });
    await client.publishAsync('sensors/well-3/senml', '[{"n":"x","v":1,"extra_":1}]', { qos: 1 });
    await client.publishAsync('sensors/well-3/temperature', Buffer.from([0xc3, 0x28]), { qos: 1 });
    await client.publishAsync('elsewhere/x', '1', { qos: 1 });
    await client.publishAsync('sensors/boiler-7/temperature', '22', { qos: 1 });
    await waitFor(() => got.readings.length === 1, { what: 'the good reading', timeoutMs: 5_000 });
    const after = source.stats();
    expect(after.badPayloads - before.badPayloads).toBe(5);
    expect(after.badPayloadsByReason).toMatchObject({
      value: 1,
      device: 1,
      json: 1,
      senml: 1,
      charset: 1,
    });
    expect(after.unmatched - before.unmatched).toBe(1);
    expect(got.readings[0]).toMatchObject({ metric: 'temperature', value: 22 });
  });

  it('refuses wrong or missing credentials (CONNACK 4) from mqtt.js and mosquitto_pub', async () => {
    const refusedBefore = source.stats().refusedConnections;
    await expect(connect(port, { username: 'sensors', password: 'wrong' })).rejects.toMatchObject({
      code: 4,
    });
    await expect(connect(port, { username: 'nobody', password: 's3cret' })).rejects.toMatchObject({
      code: 4,
    });
    await expect(connect(port)).rejects.toMatchObject({ code: 4 });
    const denied = await pub(port, 'sensors/boiler-7/temperature', '99', [
      '-u',
      'sensors',
      '-P',
      'nope',
    ]);
    expect(denied.code).not.toBe(0);
    expect(source.stats().refusedConnections - refusedBefore).toBe(4);
    expect(got.readings.some((r) => r.value === 99)).toBe(false);
  });

  it.each([
    ['just over the payload limit (refused by authorizePublish)', 1100],
    ['far over it (refused by the frame guard)', 4096],
  ])(
    'refuses a payload %s: counted, the connection dropped, others unaffected',
    async (_name, size) => {
      got.readings.length = 0;
      const tooLarge = source.stats().badPayloadsByReason.too_large ?? 0;
      const big = await connect(port, { username: 'sensors', password: 's3cret' });
      const closed = new Promise<void>((resolve) => big.once('close', () => resolve()));
      big.publish('sensors/boiler-7/blob', 'x'.repeat(size), { qos: 0 });
      await closed;
      expect(source.stats().badPayloadsByReason.too_large).toBe(tooLarge + 1);
      const other = await connect(port, { username: 'sensors', password: 's3cret' });
      await other.publishAsync('sensors/boiler-7/temperature', '23', { qos: 1 });
      await waitFor(() => got.readings.length === 1, {
        what: 'a reading after the refusal',
        timeoutMs: 5_000,
      });
    },
  );

  it('drops a client that announces a huge packet before its body arrives', async () => {
    const before = source.stats().refusedConnections;
    const socket = tcpConnect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // CONNECT whose Remaining Length says 200 MB ([MQTT-2.2.3])
    socket.write(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x60]));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(source.stats().refusedConnections).toBe(before + 1);
  });
});

describe('embedded listener open to anonymous clients', { timeout: 30_000 }, () => {
  it('accepts clients without credentials only when allowAnonymous is set', async () => {
    const got = collector();
    const source = await listener({ allowAnonymous: true }, got.sink);
    try {
      const client = await connect(source.address!.port);
      await client.publishAsync('sensors/pump-2/flow', '3.5', { qos: 1 });
      expect((await pub(source.address!.port, 'sensors/pump-2/rpm', '1450', [])).code).toBe(0);
      await waitFor(() => got.readings.length === 2, { what: 'two readings', timeoutMs: 5_000 });
      expect(source.stats().connected).toBeGreaterThanOrEqual(1);
    } finally {
      await source.stop();
    }
  });
});

describe('subscribing to an existing broker (mosquitto)', { timeout: 60_000 }, () => {
  const services = useServices();
  let mosquitto: MosquittoHandle;

  beforeAll(async () => {
    mosquitto = await services.add(startMosquitto());
  }, 60_000);

  it('maps what local sensors publish there', async () => {
    const got = collector();
    const config = mqttSourceConfigSchema.parse({
      connect: mosquitto.url,
      clientId: 'outpost-agent-test',
      topics: TOPICS,
    });
    const source = new LocalMqttSource(config, { sink: got.sink, clock });
    await source.start();
    try {
      await waitFor(() => source.stats().connected === 1, {
        what: 'subscribed',
        timeoutMs: 10_000,
      });
      const port = Number(new URL(mosquitto.url).port);
      // retry until the subscription is in place on the broker
      await waitFor(
        async () => {
          await pub(port, 'sensors/tank-1/level', '0.82', []);
          return got.readings.length > 0;
        },
        { what: 'a mapped reading', timeoutMs: 10_000, intervalMs: 200 },
      );
      expect(got.readings[0]).toEqual({
        device: 'tank-1',
        metric: 'level',
        time: NOW / 1000,
        value: 0.82,
      });
      await pub(port, 'zigbee/hall', '{"temperature":"x"}', []);
      await waitFor(() => source.stats().badPayloads === 1, {
        what: 'a bad payload counted',
        timeoutMs: 5_000,
      });
    } finally {
      await source.stop();
    }
    expect(source.stats().connected).toBe(0);
  });
});
