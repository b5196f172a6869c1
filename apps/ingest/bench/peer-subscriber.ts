import { InfluxDB, Point, type WriteApi } from '@influxdata/influxdb-client';
import mqtt, { type MqttClient } from 'mqtt';
import { serveParent } from './child.js';

/**
 * The peer a user would build by hand: an mqtt.js subscriber on mosquitto that parses each
 * SenML batch and writes it with the official client's `Point` and `WriteApi`. Tuned as its
 * README suggests for throughput (5,000-point batches, 1 s flush); everything else, gzip
 * included, is the client's default. Nothing here is durable: mosquitto has acknowledged
 * the publish before this process sees it, and the WriteApi retries from memory.
 */

export type ToPeer =
  | { type: 'start'; brokerUrl: string; storeUrl: string; bucket: string; prefix: string }
  | { type: 'flush' }
  | { type: 'stop' };

export type FromPeer =
  | { type: 'ready' }
  | {
      type: 'flushed';
      messages: number;
      points: number;
      pointsWritten: number;
      failedWrites: number;
      malformed: number;
    };

interface SenmlJson {
  bn?: string;
  bt?: number;
  bu?: string;
  n?: string;
  u?: string;
  v?: number;
  t?: number;
}

let client: MqttClient | undefined;
let writeApi: WriteApi | undefined;
const stats = { messages: 0, points: 0, pointsWritten: 0, failedWrites: 0, malformed: 0 };

async function start(m: Extract<ToPeer, { type: 'start' }>): Promise<void> {
  writeApi = new InfluxDB({ url: m.storeUrl }).getWriteApi('peer', m.bucket, 'ms', {
    batchSize: 5_000,
    flushInterval: 1_000,
    writeFailed: () => {
      stats.failedWrites++;
    },
    writeSuccess: (lines) => {
      stats.pointsWritten += lines.length;
    },
  });
  const api = writeApi;
  client = await mqtt.connectAsync(m.brokerUrl, {
    protocolVersion: 4,
    clientId: 'peer-writer',
    clean: true,
    reconnectPeriod: 0,
  });
  client.on('message', (topic, payload) => {
    stats.messages++;
    const gateway = topic.split('/')[2] ?? 'unknown';
    let records: SenmlJson[];
    try {
      records = JSON.parse(payload.toString('utf8')) as SenmlJson[];
    } catch {
      stats.malformed++;
      return;
    }
    let bn = '';
    let bt = 0;
    let bu: string | undefined;
    for (const r of records) {
      if (r.bn !== undefined) bn = r.bn;
      if (r.bt !== undefined) bt = r.bt;
      if (r.bu !== undefined) bu = r.bu;
      if (typeof r.v !== 'number') continue;
      const name = bn + (r.n ?? '');
      const slash = name.indexOf('/');
      const device = slash === -1 ? gateway : name.slice(0, slash);
      const point = new Point(`${m.prefix}${name.slice(slash + 1)}`)
        .tag('device', device)
        .floatField('value', r.v)
        .timestamp(Math.round((bt + (r.t ?? 0)) * 1000));
      const unit = r.u ?? bu;
      if (unit !== undefined) point.tag('unit', unit);
      api.writePoint(point);
      stats.points++;
    }
  });
  await client.subscribeAsync('v1/devices/+/telemetry', { qos: 1 });
}

serveParent<ToPeer, FromPeer>(async (m, reply) => {
  switch (m.type) {
    case 'start':
      await start(m);
      reply({ type: 'ready' });
      return;
    case 'flush':
      await writeApi?.flush();
      reply({ type: 'flushed', ...stats });
      return;
    case 'stop':
      await client?.endAsync().catch(() => undefined);
      await writeApi?.close().catch(() => undefined);
      process.exit(0);
  }
});
