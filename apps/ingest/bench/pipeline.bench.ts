import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Point } from '@influxdata/influxdb-client';
import { parseSenmlPack, resolveReadings, resolveSenml, toReadings } from '@outpost/protocol/senml';
import { parseTelemetryBatch } from '@outpost/protocol/telemetry';
import { signBatch, verifyBatch } from '@outpost/signing/batch';
import { generateKeyPair } from '@outpost/signing/keys';
import { importSigningKey } from '@outpost/signing/sign';
import { Registry } from 'prom-client';
import { afterAll, bench, describe } from 'vitest';
import type { DeviceSession } from '../src/broker/broker-auth.js';
import { loadConfig } from '../src/config.js';
import type { RegistryStore } from '../src/registry/registry-store.js';
import { LiveEvents } from '../src/stream/live-events.js';
import { DurableOutbox, decodePoints, encodePoints } from '../src/telemetry/durable-outbox.js';
import { toLines } from '../src/telemetry/line-protocol.js';
import { decodeBatch, toPoints } from '../src/telemetry/normalize-batch.js';
import { TelemetryService } from '../src/telemetry/telemetry.service.js';
import type { TelemetryPoint } from '../src/telemetry/telemetry-store.js';
import { batchRecords, gatewayPlans, READINGS_PER_BATCH } from './fleet.js';

/**
 * Where the event loop's time goes for one signed 100-record gateway batch (the unit of the
 * end-to-end bench, e2e-throughput.ts), stage by stage, against JSON.parse of the same
 * payload as the floor. "peer" is what the hand-built peer does per batch.
 */

const [plan] = gatewayPlans(1, 'gw');
const gateway = plan!;
const t0Ms = Date.now() - 3_600_000;
const records = batchRecords(gateway, 0, t0Ms);
const batch = { v: 1, boot: 'benchboot1', seq: [1, READINGS_PER_BATCH], records };
const pair = await generateKeyPair('Ed25519');
const key = await importSigningKey(pair.privateJwk);
const jws = Buffer.from(await signBatch(key, batch));
const bare = Buffer.from(JSON.stringify(records));
const payloadJson = JSON.parse(Buffer.from(jws.toString().split('.')[1]!, 'base64url').toString());
const session: DeviceSession = {
  deviceId: gateway.id,
  kind: 'gateway',
  children: new Set(gateway.children),
  childrenLoadedAt: Date.now(),
  keys: [pair.publicJwk],
  payloadSigning: 'required',
  tags: { site: 'bench' },
  expiresAt: Date.now() + 3_600_000,
};
const nowS = Date.now() / 1000;
const decoded = decodeBatch(payloadJson, true, session, nowS);
const tags = { room: 'r1' };
const points: TelemetryPoint[] = toPoints(decoded.readings, () => tags);
const body = encodePoints(points);

const registry = {
  getDevice: async (id: string) => ({ id, status: 'active', tags }),
  childrenOf: async () => gateway.children,
} as unknown as RegistryStore;
const service = new TelemetryService(
  { accept: async () => 'accepted' },
  registry,
  loadConfig({}),
  { now: () => Date.now() },
  new Registry(),
  new LiveEvents(),
);

describe('one signed 100-record batch on the event loop', () => {
  bench('JSON.parse of the bare SenML pack (floor)', () => {
    JSON.parse(bare.toString('utf8'));
  });
  bench('verifyBatch (cached key; Ed25519 itself runs on the threadpool)', async () => {
    await verifyBatch(jws, { keys: session.keys });
  });
  bench('decodeBatch: envelope + records parsed once, resolved in one pass', () => {
    decodeBatch(payloadJson, true, session, nowS);
  });
  bench('parseTelemetryBatch alone (envelope + records)', () => {
    parseTelemetryBatch(payloadJson);
  });
  bench('parseSenmlPack (an unsigned pack)', () => {
    parseSenmlPack(records);
  });
  bench('resolveSenml + toReadings', () => {
    toReadings(resolveSenml(records, { now: nowS }), gateway.id);
  });
  bench('resolveReadings: the same in one pass (what decodeBatch runs)', () => {
    resolveReadings(records, { now: nowS }, gateway.id);
  });
  bench('toPoints', () => {
    toPoints(decoded.readings, () => tags);
  });
  bench('encodePoints (outbox body)', () => {
    encodePoints(points);
  });
  bench('decodePoints (outbox writer, for batches not kept in memory)', () => {
    decodePoints(body);
  });
  bench('toLines (line protocol)', () => {
    toLines(points);
  });
  bench('TelemetryService.accept up to the outbox (all of the above before it)', async () => {
    // This outbox accepts every batch (no dedup), so the same batch can be sent again.
    await service.accept(session, jws);
  });
  bench('peer: JSON.parse + Point + toLineProtocol per record', () => {
    const pack = JSON.parse(bare.toString('utf8')) as {
      bn?: string;
      bt?: number;
      n: string;
      u: string;
      v: number;
    }[];
    let bn = '';
    let bt = 0;
    for (const r of pack) {
      if (r.bn !== undefined) bn = r.bn;
      if (r.bt !== undefined) bt = r.bt;
      const name = bn + r.n;
      const slash = name.indexOf('/');
      new Point(name.slice(slash + 1))
        .tag('device', name.slice(0, slash))
        .tag('unit', r.u)
        .floatField('value', r.v)
        .timestamp(Math.round(bt * 1000))
        .toLineProtocol();
    }
  });
});

const dir = mkdtempSync(join(tmpdir(), 'outpost-outbox-bench-'));
const outbox = new DurableOutbox({ path: join(dir, 'outbox.db') });
let next = 0;
afterAll(async () => {
  await outbox.close();
  rmSync(dir, { recursive: true, force: true });
});

function acceptMany(n: number) {
  return Promise.all(
    Array.from({ length: n }, () => {
      const i = next++;
      return outbox.accept({
        publisher: gateway.id,
        boot: 'benchboot1',
        seq: [i * READINGS_PER_BATCH + 1, (i + 1) * READINGS_PER_BATCH],
        points,
      });
    }),
  );
}

describe('durable outbox: accept until committed and on disk (SQLite WAL, fdatasync)', () => {
  bench('1 batch per commit', async () => {
    await acceptMany(1);
  });
  bench('20 batches in one group commit', async () => {
    await acceptMany(20);
  });
  bench('100 batches in one group commit', async () => {
    await acceptMany(100);
  });
});
