import { spawn } from 'node:child_process';
import { type Socket, connect as tcpConnect } from 'node:net';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  enrollDevice,
  type InProcessIngest,
  startInProcess,
  waitUntil,
} from './support/ingest-app.js';

// Real parts: the ingest app with its aedes broker on a TCP port, SQLite registry and
// telemetry store, mqtt.js and mosquitto_pub as clients over real sockets.

let ingest: InProcessIngest;
let boot = 0;

async function jwt(
  pair: KeyPair,
  deviceId: string,
  extra: { lifetimeS?: number; audience?: string; now?: number } = {},
) {
  const { token } = await signDeviceJwt(pair.privateJwk, {
    deviceId,
    ...(extra.lifetimeS ? { lifetimeS: extra.lifetimeS } : {}),
    ...(extra.audience ? { audience: extra.audience } : {}),
    now: () => (extra.now ?? ingest.clock.now()) / 1000,
  });
  return token;
}

function connect(
  deviceId: string,
  password: string,
  options: IClientOptions = {},
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${ingest.mqttPort}`, {
      protocolVersion: 4,
      clientId: deviceId,
      username: deviceId,
      password,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...options,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** The CONNACK return code a connection attempt gets (0 = accepted). */
async function connackCode(
  deviceId: string,
  password: string,
  options: IClientOptions = {},
): Promise<number> {
  try {
    const c = await connect(deviceId, password, options);
    await c.endAsync();
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

function batch(records: unknown[], seq: [number, number] = [1, records.length], bootId?: string) {
  return { v: 1, boot: bootId ?? `boot${String(++boot).padStart(6, '0')}`, seq, records };
}

const t0 = () => Math.floor(ingest.clock.now() / 1000) - 60;

async function latest(deviceId: string) {
  return (await ingest.api('GET', `/api/v1/devices/${deviceId}/latest`)).body.metrics as
    | { metric: string; value: unknown }[]
    | undefined;
}

async function series(deviceId: string, metric: string) {
  const res = await ingest.api(
    'GET',
    `/api/v1/devices/${deviceId}/telemetry?metric=${metric}&from=-1d&to=now`,
  );
  return (res.body.points as { value: unknown }[] | undefined) ?? [];
}

function nextCommand(client: MqttClient, deviceId: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    client.on('message', (topic, payload) => {
      if (topic !== topics.commands(deviceId)) return;
      const [, body] = payload.toString().split('.');
      resolve(JSON.parse(Buffer.from(body!, 'base64url').toString()) as Record<string, unknown>);
    });
  });
}

describe('embedded MQTT broker (real sockets)', () => {
  let gw: KeyPair;
  let dev: KeyPair;

  beforeAll(async () => {
    ingest = await startInProcess();
    gw = await enrollDevice(ingest, 'gw-1', { kind: 'gateway', tags: { site: 'north' } });
    await ingest.api('POST', '/api/v1/devices/import', [
      { id: 'th-1', gateway: 'gw-1', tags: { room: 'boiler' } },
    ]);
    dev = await enrollDevice(ingest, 'dev-1');
  });
  afterAll(() => ingest?.close());

  it('accepts a gateway batch for itself and its child at QoS 1 and stores every reading', async () => {
    const client = await connect('gw-1', await jwt(gw, 'gw-1'));
    const t = t0();
    const jws = await signBatch(
      gw.privateJwk,
      batch([
        { bt: t, n: 'cpu', u: '%', v: 12.5 },
        { n: 'th-1/temperature', u: 'Cel', v: 21.5 },
        { n: 'th-1/temperature', u: 'Cel', v: 21.7, t: 1 },
        { n: 'th-1/door', vb: true },
      ]),
    );
    await client.publishAsync(topics.telemetry('gw-1'), jws, { qos: 1 });
    await client.endAsync();
    const temps = await waitUntil(async () => {
      const p = await series('th-1', 'temperature');
      return p.length === 2 && p;
    }, 'stored readings');
    expect(temps.map((p) => p.value)).toEqual([21.5, 21.7]);
    const gwLatest = await latest('gw-1');
    expect(gwLatest).toEqual([expect.objectContaining({ metric: 'cpu', value: 12.5 })]);
    // Connectivity is written in batches, not per message.
    await waitUntil(async () => {
      const gw1 = await ingest.api('GET', '/api/v1/devices/gw-1');
      return (gw1.body.connectivity as { lastSeen: string | null }).lastSeen !== null;
    }, 'last seen recorded');
  });

  it.each([
    [
      'a token signed by another key',
      async () => ['dev-1', await jwt(await generateKeyPair(), 'dev-1')],
      4,
    ],
    ['an unknown device', async () => ['ghost-1', await jwt(dev, 'ghost-1')], 5],
    ['a token for another device', async () => ['dev-1', await jwt(dev, 'gw-1')], 4],
    ['a wrong audience', async () => ['dev-1', await jwt(dev, 'dev-1', { audience: 'other' })], 4],
    [
      'an expired token',
      async () => ['dev-1', await jwt(dev, 'dev-1', { now: Date.now() - 3 * 3600_000 })],
      4,
    ],
    [
      'an over-long lifetime',
      async () => ['dev-1', await jwt(dev, 'dev-1', { lifetimeS: 30 * 3600 })],
      4,
    ],
    ['garbage as password', async () => ['dev-1', 'not-a-jwt'], 4],
  ] as const)('refuses %s with CONNACK %d', async (_name, make, code) => {
    const [id, password] = (await make()) as [string, string];
    expect(await connackCode(id, password)).toBe(code);
  });

  it('refuses a client id that is not the username, and an empty client id', async () => {
    const token = await jwt(dev, 'dev-1');
    expect(await connackCode('dev-1', token, { username: 'gw-1' })).toBe(5);
    expect(await connackCode('', token, { username: 'dev-1', clean: true })).toBe(2);
  });

  it('answers a refused batch with telemetry.rejected on the commands topic and stores nothing', async () => {
    const client = await connect('gw-1', await jwt(gw, 'gw-1'));
    await client.subscribeAsync(topics.commands('gw-1'), { qos: 1 });
    const cases: [string, Promise<string> | string, string][] = [
      [
        'child of another gateway',
        signBatch(gw.privateJwk, batch([{ n: 'dev-1/x', v: 1, t: t0() }], [1, 1], 'rejectA1')),
        'not_child',
      ],
      [
        'signed by someone else',
        signBatch(
          (await generateKeyPair()).privateJwk,
          batch([{ n: 'x', v: 1 }], [1, 1], 'rejectB1'),
        ),
        'bad_signature',
      ],
      [
        'unknown SenML field',
        signBatch(gw.privateJwk, batch([{ n: 'x', v: 1, evil: 1 }], [1, 1], 'rejectC1')),
        'schema',
      ],
    ];
    for (const [name, payload, reason] of cases) {
      if (reason === 'bad_signature') {
        // A batch that does not verify cannot be trusted to name its boot/seq: it is
        // acknowledged and counted, and no reply names it.
        await client.publishAsync(topics.telemetry('gw-1'), await payload, { qos: 1 });
        continue;
      }
      const reply = nextCommand(client, 'gw-1');
      await client.publishAsync(topics.telemetry('gw-1'), await payload, { qos: 1 });
      const command = await reply;
      client.removeAllListeners('message');
      expect(command, name).toMatchObject({ type: 'telemetry.rejected', device: 'gw-1', reason });
    }
    const metrics = await fetch(`${ingest.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/outpost_ingest_rejected_total\{reason="bad_signature"[^}]*\} 1/);
    await client.endAsync();
    expect(await series('dev-1', 'x')).toEqual([]);
  });

  it('acknowledges a replayed batch once and stores it once', async () => {
    const client = await connect('dev-1', await jwt(dev, 'dev-1'));
    const jws = await signBatch(
      dev.privateJwk,
      batch(
        [
          { bt: t0(), n: 'replayed', v: 1 },
          { n: 'replayed', v: 2, t: 1 },
        ],
        [1, 2],
        'replay01',
      ),
    );
    for (let i = 0; i < 3; i++)
      await client.publishAsync(topics.telemetry('dev-1'), jws, { qos: 1 });
    await client.endAsync();
    await waitUntil(
      async () => (await series('dev-1', 'replayed')).length === 2,
      'replayed batch stored',
    );
    const metrics = await ingest.api('GET', '/metrics').then((r) => (r.body.text as string) ?? '');
    expect(metrics).toMatch(/outpost_ingest_batches_total\{outcome="duplicate"[^}]*\} 2/);
  });

  it('disconnects a device that publishes as another device or to a commands topic', async () => {
    for (const topic of [
      topics.telemetry('gw-1'),
      topics.commands('dev-1'),
      'v1/devices/dev-1/other',
      '$SYS/x',
    ]) {
      const client = await connect('dev-1', await jwt(dev, 'dev-1'));
      const closed = new Promise<void>((r) => client.once('close', () => r()));
      client.publish(topic, 'x', { qos: 1 });
      await closed;
      client.end(true);
    }
  });

  it('refuses wildcard and foreign subscriptions with SUBACK 128 and grants the own commands topic', async () => {
    const client = await connect('gw-1', await jwt(gw, 'gw-1'));
    const filters = [
      '#',
      'v1/devices/+/commands',
      topics.commands('dev-1'),
      topics.commands('gw-1'),
      topics.commands('th-1'),
    ];
    const granted = await client.subscribeAsync(filters, { qos: 1 }).catch(
      // mqtt.js reports a SUBACK with failures as an error that carries the packet.
      (err: { packet?: { granted: number[] } }) =>
        err.packet?.granted.map((qos) => ({ qos })) ?? [],
    );
    expect(granted.map((g) => g.qos)).toEqual([128, 128, 128, 1, 1]);
    await client.endAsync();
  });

  it('drops a connection announcing an oversized packet before its body is buffered', async () => {
    const token = await jwt(dev, 'dev-1');
    const socket = await rawConnect('dev-1', token, 60);
    const closed = new Promise((r) => socket.once('close', r));
    // PUBLISH fixed header with Remaining Length = 100 MiB, then a trickle of body.
    socket.write(Buffer.from([0x32, 0x80, 0x80, 0x80, 0x32]));
    socket.write(Buffer.alloc(1024));
    await closed;
  });

  it('records retained state and shows outbox stats through the API', async () => {
    const client = await connect('gw-1', await jwt(gw, 'gw-1'));
    const state = {
      v: 1,
      firmware: { version: '1.4.2' },
      agent: { version: '0.1.0' },
      uptime_s: 12,
      outbox: { pending: 42, bytes: 4200, oldest_s: 3600, dropped: 0 },
      ports: [{ path: '/dev/ttyUSB0', state: 'open' }],
      config_version: 1,
    };
    await client.publishAsync(topics.state('gw-1'), JSON.stringify(state), {
      qos: 1,
      retain: true,
    });
    await client.endAsync();
    const device = await waitUntil(async () => {
      const d = await ingest.api('GET', '/api/v1/devices/gw-1');
      return (d.body.outbox as { pending?: number } | null)?.pending === 42 && d.body;
    }, 'reported state');
    expect(device).toMatchObject({
      reportedState: { firmware: { version: '1.4.2' } },
      outbox: { pending: 42, oldestS: 3600 },
    });
    await waitUntil(
      async () =>
        ((await ingest.api('GET', '/api/v1/devices/gw-1')).body.connectivity as { state: string })
          .state === 'buffering',
      'buffering state',
    );
  });

  it('publishes a will message on an abrupt disconnect', async () => {
    const will = { v: 1, firmware: { version: '9.9.9' }, uptime_s: 0 };
    const client = await connect('dev-1', await jwt(dev, 'dev-1'), {
      will: {
        topic: topics.state('dev-1'),
        payload: Buffer.from(JSON.stringify(will)),
        qos: 1,
        retain: true,
      },
    });
    (client.stream as Socket).destroy();
    client.end(true);
    await waitUntil(
      async () =>
        (
          (await ingest.api('GET', '/api/v1/devices/dev-1')).body.reportedState as {
            firmware?: { version?: string };
          } | null
        )?.firmware?.version === '9.9.9',
      'will recorded',
    );
  });

  it('delivers a QoS 1 command queued while a persistent session was offline', async () => {
    const token = await jwt(dev, 'dev-1');
    const first = await connect('dev-1', token, { clean: false });
    await first.subscribeAsync(topics.commands('dev-1'), { qos: 1 });
    await first.endAsync();
    const id = await ingest.broker.publishCommand('dev-1', { type: 'ping' });
    const second = await connect('dev-1', token, { clean: false });
    const command = await nextCommand(second, 'dev-1');
    expect(command).toMatchObject({ type: 'ping', id, device: 'dev-1' });
    await second.endAsync();
  });

  it('sends a changed desired config as a signed config.desired command, and again on resubscribe', async () => {
    const client = await connect('dev-1', await jwt(dev, 'dev-1'));
    await client.subscribeAsync(topics.commands('dev-1'), { qos: 1 });
    const pushed = nextCommand(client, 'dev-1');
    const patched = await ingest.api('PATCH', '/api/v1/devices/dev-1', {
      desiredConfig: { batch: { maxRecords: 100 } },
    });
    expect(patched.status).toBe(200);
    expect(await pushed).toMatchObject({
      type: 'config.desired',
      device: 'dev-1',
      version: 1,
      config: { batch: { maxRecords: 100 } },
    });
    await client.endAsync();
    // It has not reported config_version 1 yet: the next subscription gets it again.
    const again = await connect('dev-1', await jwt(dev, 'dev-1'));
    const resent = nextCommand(again, 'dev-1');
    await again.subscribeAsync(topics.commands('dev-1'), { qos: 1 });
    expect(await resent).toMatchObject({ type: 'config.desired', version: 1 });
    await again.endAsync();
  });

  it('closes a session whose keep-alive lapses and records why', async () => {
    const socket = await rawConnect('dev-1', await jwt(dev, 'dev-1'), 1);
    await new Promise((r) => socket.once('close', r));
    await waitUntil(async () => {
      const c = (await ingest.api('GET', '/api/v1/devices/dev-1')).body.connectivity as {
        online: boolean;
        disconnectReason: string;
      };
      return !c.online && c.disconnectReason === 'keepalive_timeout';
    }, 'keepalive reason');
  });

  it('lets a new connection take over a client id, and damps a takeover loop', async () => {
    const flapper = await enrollDevice(ingest, 'flap-1');
    const token = await jwt(flapper, 'flap-1');
    const a = await connect('flap-1', token);
    const aClosed = new Promise<void>((r) => a.once('close', () => r()));
    const b = await connect('flap-1', token);
    await aClosed;
    a.end(true);
    // Two clients fighting over one id: every new connection takes the id over.
    const fighters: MqttClient[] = [b];
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      try {
        fighters.push(await connect('flap-1', token));
        codes.push(0);
      } catch (err) {
        codes.push((err as { code?: number }).code ?? -1);
      }
    }
    expect(codes.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(codes).toContain(3);
    for (const f of fighters) f.end(true);
  });

  it('accepts a batch from mosquitto_pub, a second MQTT implementation', async () => {
    const jws = await signBatch(
      dev.privateJwk,
      batch([{ bt: t0(), n: 'from_mosquitto', v: 7 }], [1, 1], 'mosq0001'),
    );
    const token = await jwt(dev, 'dev-1');
    const ok = await new Promise<number>((resolve) => {
      const p = spawn(
        'mosquitto_pub',
        [
          '-h',
          '127.0.0.1',
          '-p',
          String(ingest.mqttPort),
          '-V',
          'mqttv311',
          '-i',
          'dev-1',
          '-u',
          'dev-1',
          '-P',
          token,
          '-q',
          '1',
          '-t',
          topics.telemetry('dev-1'),
          '-s',
        ],
        { stdio: ['pipe', 'inherit', 'inherit'] },
      );
      p.on('exit', (c) => resolve(c ?? -1));
      p.stdin.end(jws);
    });
    expect(ok).toBe(0);
    await waitUntil(
      async () => (await series('dev-1', 'from_mosquitto')).length === 1,
      'mosquitto reading',
    );
  });

  it('disconnects a device within 1 s of its revocation', async () => {
    const revokee = await enrollDevice(ingest, 'rev-1');
    const client = await connect('rev-1', await jwt(revokee, 'rev-1'));
    const closed = new Promise<number>((r) => client.once('close', () => r(Date.now())));
    const start = Date.now();
    await ingest.api('POST', '/api/v1/devices/rev-1/revoke');
    const at = await closed;
    expect(at - start).toBeLessThan(1000);
    client.end(true);
    expect(await connackCode('rev-1', await jwt(revokee, 'rev-1'))).toBe(5);
  });
});

/** A raw MQTT 3.1.1 CONNECT over TCP, for keep-alive and framing tests. */
async function rawConnect(clientId: string, password: string, keepaliveS: number): Promise<Socket> {
  const str = (s: string) => {
    const b = Buffer.from(s);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const variable = Buffer.concat([
    str('MQTT'),
    Buffer.from([4, 0xc2, keepaliveS >> 8, keepaliveS & 0xff]),
  ]);
  const payload = Buffer.concat([str(clientId), str(clientId), str(password)]);
  const body = Buffer.concat([variable, payload]);
  const len: number[] = [];
  let n = body.length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  const socket = tcpConnect(ingest.mqttPort, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.write(Buffer.concat([Buffer.from([0x10, ...len]), body]));
  const connack = await new Promise<Buffer>((r) => socket.once('data', r));
  if (connack[3] !== 0) throw new Error(`CONNACK ${connack[3]}`);
  return socket;
}
