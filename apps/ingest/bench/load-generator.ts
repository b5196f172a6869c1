import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { importSigningKey } from '@outpost/signing/sign';
import mqtt, { type MqttClient } from 'mqtt';
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
 * out; then it waits for every outstanding PUBACK. Batches are built and signed during
 * `prepare`, before the clock starts, so signing costs nothing during the run.
 */

const now = () => performance.timeOrigin + performance.now();

interface Connection {
  gateway: GeneratorGateway;
  client: MqttClient;
  topic: string;
  payloads: Buffer[];
}

let connections: Connection[] = [];

async function prepare(m: Extract<ToGenerator, { type: 'prepare' }>): Promise<FromGenerator> {
  const started = now();
  let payloadBytes = 0;
  const built = await Promise.all(
    m.gateways.map(async (gateway) => {
      const key = gateway.privateJwk ? await importSigningKey(gateway.privateJwk) : undefined;
      const payloads: Buffer[] = [];
      for (let i = 0; i < m.batchesPerGateway; i++) {
        const records = batchRecords(gateway, i, m.t0Ms);
        const seq: [number, number] = [i * READINGS_PER_BATCH + 1, (i + 1) * READINGS_PER_BATCH];
        const body = key
          ? await signBatch(key, { v: 1, boot: gateway.boot, seq, records })
          : JSON.stringify(records);
        const payload = Buffer.from(body);
        payloadBytes += payload.length;
        payloads.push(payload);
      }
      return { gateway, payloads };
    }),
  );
  connections = await Promise.all(
    built.map(async ({ gateway, payloads }) => {
      const client = await mqtt.connectAsync(m.brokerUrl, {
        protocolVersion: 4,
        clientId: gateway.id,
        ...(gateway.password ? { username: gateway.id, password: gateway.password } : {}),
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 30_000,
        keepalive: 60,
      });
      return { gateway, client, topic: topics.telemetry(gateway.id), payloads };
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
      let next = 0;
      let inflight = 0;
      let closed = false;
      const more = () => next < conn.payloads.length && now() < deadline;
      conn.client.once('close', () => {
        if (inflight > 0 || more()) {
          errors.push(`${conn.gateway.id}: connection closed with ${inflight} unacknowledged`);
        }
        closed = true;
        resolve();
      });
      const pump = () => {
        while (!closed && inflight < window && more()) {
          const sentAt = now();
          inflight++;
          published++;
          conn.client.publish(conn.topic, conn.payloads[next++]!, { qos: 1 }, (err) => {
            if (closed) return;
            inflight--;
            if (err) {
              errors.push(`${conn.gateway.id}: ${err.message}`);
            } else {
              acked++;
              lastAckAt = now();
              latencies.push(lastAckAt - sentAt);
            }
            pump();
          });
        }
        if (inflight === 0 && !more()) {
          if (next >= conn.payloads.length) exhausted++;
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
      await Promise.all(connections.map((c) => c.client.endAsync().catch(() => undefined)));
      process.exit(0);
  }
});
