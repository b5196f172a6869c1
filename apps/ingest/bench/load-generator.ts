import { connect, type Socket } from 'node:net';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { importSigningKey } from '@outpost/signing/sign';
import { generate, type Packet, parser } from 'mqtt-packet';
import { serveParent } from './child.js';
import { batchRecords, READINGS_PER_BATCH } from './fleet.js';
import type {
  FromGenerator,
  GeneratorGateway,
  LatencySummary,
  ToGenerator,
} from './load-messages.js';

/**
 * A load generator process: N gateway connections, each publishing its prepared batches at
 * QoS 1 with at most `window` unacknowledged, until the deadline or until its batches run
 * out; then it waits for every outstanding PUBACK. Batches are built, signed and encoded as
 * MQTT PUBLISH packets (mqtt-packet, the encoder of mqtt.js and aedes) during `prepare`,
 * before the clock starts, and written to a plain socket: on a 2-core machine every
 * microsecond the load costs is taken from the server under test, and a client library's
 * per-publish bookkeeping (stores, callbacks, timers) is not what is measured.
 */

const now = () => performance.timeOrigin + performance.now();
/** MQTT packet ids are 1…65535; a window is far smaller, so ids never collide in flight. */
const MAX_PACKET_ID = 65_535;
const PINGREQ = generate({ cmd: 'pingreq' });
const DISCONNECT = generate({ cmd: 'disconnect' });

interface Connection {
  gateway: GeneratorGateway;
  socket: Socket;
  /** PUBLISH packets, QoS 1, packet id `index % 65535 + 1`. */
  packets: Buffer[];
  /** Called with each PUBACK's packet id. */
  onAck: (id: number) => void;
  ping: NodeJS.Timeout;
}

let connections: Connection[] = [];

/** CONNECT and wait for CONNACK; the socket then delivers PUBACKs to `onAck`. */
function open(
  brokerUrl: string,
  gateway: GeneratorGateway,
  keepaliveS: number,
): Promise<Connection> {
  const url = new URL(brokerUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port || 1883) });
    socket.setNoDelay(true);
    const incoming = parser({ protocolVersion: 4 });
    let connected = false;
    const conn: Connection = {
      gateway,
      socket,
      packets: [],
      onAck: () => undefined,
      ping: setInterval(() => socket.write(PINGREQ), (keepaliveS * 1000) / 2),
    };
    conn.ping.unref();
    const fail = (err: Error) => {
      clearInterval(conn.ping);
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(30_000, () => {
      if (!connected) fail(new Error(`${gateway.id}: no CONNACK within 30 s`));
    });
    socket.once('error', (err) => {
      if (!connected) fail(err);
    });
    incoming.on('error', (err) => socket.destroy(err));
    incoming.on('packet', (packet: Packet) => {
      if (packet.cmd === 'puback') {
        conn.onAck(packet.messageId ?? 0);
      } else if (packet.cmd === 'connack' && !connected) {
        if (packet.returnCode !== 0) {
          fail(new Error(`${gateway.id}: CONNACK return code ${packet.returnCode}`));
          return;
        }
        connected = true;
        socket.setTimeout(0);
        resolve(conn);
      }
    });
    socket.on('data', (chunk: Buffer) => incoming.parse(chunk));
    socket.write(
      generate({
        cmd: 'connect',
        protocolVersion: 4,
        clientId: gateway.id,
        clean: true,
        keepalive: keepaliveS,
        ...(gateway.password
          ? { username: gateway.id, password: Buffer.from(gateway.password) }
          : {}),
      }),
    );
  });
}

async function prepare(m: Extract<ToGenerator, { type: 'prepare' }>): Promise<FromGenerator> {
  const started = now();
  let payloadBytes = 0;
  const built = await Promise.all(
    m.gateways.map(async (gateway) => {
      const key = gateway.privateJwk ? await importSigningKey(gateway.privateJwk) : undefined;
      const topic = topics.telemetry(gateway.id);
      const packets: Buffer[] = [];
      for (let i = 0; i < m.batchesPerGateway; i++) {
        const records = batchRecords(gateway, i, m.t0Ms);
        const seq: [number, number] = [i * READINGS_PER_BATCH + 1, (i + 1) * READINGS_PER_BATCH];
        const body = key
          ? await signBatch(key, { v: 1, boot: gateway.boot, seq, records })
          : JSON.stringify(records);
        const payload = Buffer.from(body);
        payloadBytes += payload.length;
        packets.push(
          generate({
            cmd: 'publish',
            topic,
            payload,
            qos: 1,
            messageId: (i % MAX_PACKET_ID) + 1,
            retain: false,
            dup: false,
          }),
        );
      }
      return { gateway, packets };
    }),
  );
  connections = await Promise.all(
    built.map(async ({ gateway, packets }) => {
      const conn = await open(m.brokerUrl, gateway, 60);
      conn.packets = packets;
      return conn;
    }),
  );
  return {
    type: 'ready',
    prepareMs: now() - started,
    payloadBytes: payloadBytes / Math.max(1, m.gateways.length * m.batchesPerGateway),
    connected: connections.length,
  };
}

async function run(durationMs: number, window: number): Promise<FromGenerator> {
  const deadline = now() + durationMs;
  const latencies: number[] = [];
  const errors: string[] = [];
  let published = 0;
  let acked = 0;
  let exhausted = 0;
  let lastAckAt = 0;
  const firstPublishAt = now();

  const drive = (conn: Connection) =>
    new Promise<void>((resolve) => {
      const sentAt = new Float64Array(MAX_PACKET_ID + 1);
      let next = 0;
      let inflight = 0;
      let closed = false;
      const more = () => next < conn.packets.length && now() < deadline;
      conn.socket.once('close', () => {
        if (inflight > 0 || more()) {
          errors.push(`${conn.gateway.id}: connection closed with ${inflight} unacknowledged`);
        }
        closed = true;
        resolve();
      });
      conn.socket.on('error', (err) => errors.push(`${conn.gateway.id}: ${err.message}`));
      conn.onAck = (id) => {
        if (closed || sentAt[id] === 0) return;
        inflight--;
        acked++;
        lastAckAt = now();
        latencies.push(lastAckAt - sentAt[id]!);
        sentAt[id] = 0;
        pump();
      };
      const pump = () => {
        if (!closed && inflight < window && more()) {
          // Every packet that fits the window goes out in one write.
          const burst: Buffer[] = [];
          const at = now();
          while (inflight < window && more()) {
            sentAt[(next % MAX_PACKET_ID) + 1] = at;
            burst.push(conn.packets[next++]!);
            inflight++;
            published++;
          }
          conn.socket.write(burst.length === 1 ? burst[0]! : Buffer.concat(burst));
        }
        if (inflight === 0 && !more()) {
          if (next >= conn.packets.length) exhausted++;
          resolve();
        }
      };
      pump();
    });

  await Promise.all(connections.map(drive));
  return {
    type: 'done',
    firstPublishAt,
    lastAckAt,
    published,
    acked,
    readingsAcked: acked * READINGS_PER_BATCH,
    exhausted,
    errors: errors.slice(0, 20),
    latencyMs: summarize(latencies),
  };
}

function summarize(values: number[]): LatencySummary {
  if (values.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]! };
}

let window = 1;
serveParent<ToGenerator, FromGenerator>(async (m, reply) => {
  switch (m.type) {
    case 'prepare':
      window = m.window;
      reply(await prepare(m));
      return;
    case 'start':
      reply(await run(m.durationMs, window));
      return;
    case 'stop':
      // A clean DISCONNECT each, so the server records no lost connection.
      await Promise.all(
        connections.map(
          (c) =>
            new Promise<void>((resolve) => {
              clearInterval(c.ping);
              if (c.socket.destroyed) return resolve();
              c.socket.once('close', () => resolve());
              c.socket.end(DISCONNECT);
              setTimeout(() => c.socket.destroy(), 5_000).unref();
            }),
        ),
      );
      process.exit(0);
  }
});
