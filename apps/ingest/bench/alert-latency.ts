import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { startIngest } from '@outpost/test-kit/ingest';
import mqtt, { type MqttClient } from 'mqtt';
import { printTable, round, writeTable } from './results.js';

/**
 * Alert latency, whole stack: a reading published over MQTT → its alert transition on the SSE
 * stream, at a steady 1,000 readings/s. The built ingest runs as a process (test-kit); this
 * process publishes signed batches at QoS 1 from N devices, every 100 ms each, and reads
 * `GET /api/v1/stream?types=alerts`. One batch in `--every` flips its device's level across
 * the rule's limits, so it causes exactly one transition (firing or resolved); its latency is
 * from just before PUBLISH to the `alerts` event, both timed here on one clock. Prints and
 * writes `bench-results/ingest-alerts.json`; asserts nothing.
 *
 *   npx tsc -p bench/tsconfig.json && node bench/dist/alert-latency.js
 *     [--devices 20] [--batch 5] [--every 10] [--duration 30] [--warmup 5]
 */
const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '20' },
    batch: { type: 'string', default: '5' },
    every: { type: 'string', default: '10' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '5' },
  },
});
const int = (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`not a positive integer: ${text}`);
  return n;
};
const DEVICES = int(values.devices);
const BATCH = int(values.batch);
const EVERY = int(values.every);
const DURATION_S = int(values.duration);
const WARMUP_S = int(values.warmup);
const PERIOD_MS = 100;

interface Device {
  id: string;
  pair: KeyPair;
  client?: MqttClient;
  high: boolean;
  sent: number;
}

function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/\s+/g, ' ');
  } catch {
    return 'uptime unavailable';
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const ingest = await startIngest({ env: { INGEST_LOG_LEVEL: 'warn' } });
const before = uptime();
try {
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${ingest.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ingest.adminToken}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  // Devices enrolled as a user would (PROTOCOL.md §2), then one MQTT session each.
  const devices: Device[] = [];
  for (let i = 0; i < DEVICES; i++) {
    const id = `bench-alert-${String(i).padStart(3, '0')}`;
    const created = await api('POST', '/api/v1/enrollments', { deviceId: id });
    const pair = await generateKeyPair('EdDSA');
    const { token: proof } = await signEnrollmentProof(pair.privateJwk, {
      jti: created.jti as string,
      deviceId: id,
    });
    const enrolled = await fetch(`${ingest.url}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: created.token, publicKey: pair.publicJwk, proof }),
    });
    if (enrolled.status !== 201) throw new Error(`enroll ${id}: ${enrolled.status}`);
    devices.push({ id, pair, high: false, sent: 0 });
  }
  await api('POST', '/api/v1/alert-rules', {
    name: 'bench load',
    metric: 'load',
    above: 50,
    clearBelow: 40,
    flap: null,
    scope: { devices: devices.map((d) => d.id) },
    channels: [],
  });
  for (const d of devices) {
    const { token } = await signDeviceJwt(d.pair.privateJwk, { deviceId: d.id, lifetimeS: 3600 });
    d.client = await mqtt.connectAsync(ingest.mqttUrl, {
      protocolVersion: 4,
      clientId: d.id,
      username: d.id,
      password: token,
      reconnectPeriod: 0,
    });
  }

  // The stream, read here; transitions keyed by device and the time of the reading.
  const published = new Map<string, number>();
  const acked = new Map<string, number>();
  const latencies: number[] = [];
  /** The alert's arrival after the PUBACK of its batch: the alert path alone, roughly. */
  const afterAck: number[] = [];
  const ackLatencies: number[] = [];
  let measuring = false;
  let received = 0;
  let expected = 0;
  const stream = new AbortController();
  const res = await fetch(`${ingest.url}/api/v1/stream?types=alerts`, {
    headers: { authorization: `Bearer ${ingest.adminToken}` },
    signal: stream.signal,
  });
  const reading = (async () => {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      const at = performance.now();
      buffer += decoder.decode(value, { stream: true });
      for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (!frame.includes('event: alerts') || !data) continue;
        const m = JSON.parse(data) as { at: string; alert: { device: string } };
        const key = `${m.alert.device}|${Date.parse(m.at)}`;
        const sentAt = published.get(key);
        if (sentAt === undefined) continue;
        published.delete(key);
        received++;
        if (!measuring) continue;
        latencies.push(at - sentAt);
        const ackAt = acked.get(key);
        if (ackAt !== undefined) afterAck.push(at - ackAt);
        acked.delete(key);
      }
    }
  })().catch(() => {});

  // Every device publishes a batch every 100 ms: DEVICES × BATCH × 10 readings/s.
  const publishOne = async (d: Device) => {
    const flip = d.sent % EVERY === EVERY - 1;
    if (flip) d.high = !d.high;
    d.sent++;
    const base = d.high ? 70 : 20;
    const t0 = Date.now();
    const records = Array.from({ length: BATCH }, (_, k) => ({
      ...(k === 0 ? { bt: t0 / 1000 } : { t: k / 1000 }),
      n: 'load',
      v: base + (k % 3),
    }));
    const jws = await signBatch(d.pair.privateJwk, {
      v: 1,
      boot: `bench${d.id.slice(-3)}x`,
      seq: [d.sent * BATCH, d.sent * BATCH + BATCH - 1],
      records,
    });
    const start = performance.now();
    const counted = measuring;
    // The transition happens at the batch's first reading (times are kept in ms).
    const key = `${d.id}|${t0}`;
    if (flip) {
      published.set(key, start);
      if (counted) expected++;
    }
    await d.client!.publishAsync(topics.telemetry(d.id), jws, { qos: 1 });
    const ackAt = performance.now();
    if (flip && published.has(key)) acked.set(key, ackAt);
    if (counted) ackLatencies.push(ackAt - start);
  };
  const timers = devices.map((d, i) =>
    setTimeout(
      () => {
        const t = setInterval(() => {
          publishOne(d).catch((err: unknown) => console.error(`publish ${d.id}:`, err));
        }, PERIOD_MS);
        timers.push(t as unknown as NodeJS.Timeout);
      },
      (i * PERIOD_MS) / DEVICES,
    ),
  );

  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  measuring = true;
  const startedAt = performance.now();
  const receivedBefore = received;
  await new Promise((r) => setTimeout(r, DURATION_S * 1000));
  measuring = false;
  const elapsedS = (performance.now() - startedAt) / 1000;
  for (const t of timers) {
    clearTimeout(t);
    clearInterval(t);
  }
  await new Promise((r) => setTimeout(r, 2000));
  stream.abort();
  await reading;
  for (const d of devices) await d.client?.endAsync();

  const sorted = [...latencies].sort((a, b) => a - b);
  const acks = [...ackLatencies].sort((a, b) => a - b);
  const alertPath = [...afterAck].sort((a, b) => a - b);
  const readingsPerS = round((ackLatencies.length * BATCH) / elapsedS, 0);
  const table = {
    kind: 'table' as const,
    title: 'Alerts: reading published (MQTT) → alert on the SSE stream',
    columns: [
      'readings/s',
      'transitions',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'max ms',
      'PUBACK p50 ms',
      'PUBACK p99 ms',
      'after PUBACK p50 ms',
      'after PUBACK p99 ms',
      'missing',
    ],
    rows: [
      [
        readingsPerS,
        sorted.length,
        round(percentile(sorted, 50), 1),
        round(percentile(sorted, 90), 1),
        round(percentile(sorted, 99), 1),
        round(sorted.at(-1) ?? Number.NaN, 1),
        round(percentile(acks, 50), 1),
        round(percentile(acks, 99), 1),
        round(percentile(alertPath, 50), 1),
        round(percentile(alertPath, 99), 1),
        expected - sorted.length,
      ],
    ],
    notes: [
      `${DEVICES} devices × ${BATCH} readings every ${PERIOD_MS} ms over MQTT QoS 1, ${DURATION_S} s after ${WARMUP_S} s warm-up; 1 batch in ${EVERY} crosses the limits (one transition each)`,
      'latency: this process, just before PUBLISH → the `alerts` SSE event arriving here; includes verification, the durable outbox commit, evaluation and the alert store commit (SQLite, synchronous=FULL)',
      '"after PUBACK": the alert event after the PUBACK of its batch (when the batch was durably accepted and its readings handed to the engine): the alert path alone, as seen from here; it is negative when the event overtakes the PUBACK',
      'the goal is p99 < 50 ms; nothing asserts on it',
      `machine before: ${before}; after: ${uptime()}`,
    ],
    details: {
      devices: DEVICES,
      batch: BATCH,
      every: EVERY,
      durationS: DURATION_S,
      warmupS: WARMUP_S,
      receivedDuringRun: received - receivedBefore,
      latenciesMs: sorted.map((v) => round(v, 2)),
      afterPubackMs: alertPath.map((v) => round(v, 2)),
    },
  };
  printTable(table);
  console.log(`written: ${writeTable('ingest-alerts', table)}`);
} finally {
  await ingest.stop();
}
