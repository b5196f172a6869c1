import { parseTelemetryBatch } from '@outpost/protocol/telemetry';
import { verifyBatch } from '@outpost/signing/batch';
import { generateKeyPair } from '@outpost/signing/keys';
import { importSigningKey } from '@outpost/signing/sign';
import { describe, expect, it } from 'vitest';
import type { OutboxBatch } from '../outbox/outbox.js';
import { packReadings } from '../outbox/pack.js';
import { isBackfill, signOutboxBatch } from './sign-batch.js';

const T = 1_750_000_000;

function batch(over: Partial<OutboxBatch> = {}): OutboxBatch {
  const readings = [0, 1, 2].map((i) => ({
    deviceId: i === 0 ? 'gw-1' : 'th-1',
    metric: 'temperature',
    time: T + i,
    value: 20 + i,
    unit: 'Cel',
    backfilled: false,
    clock: 'unsynced' as const,
  }));
  const pack = packReadings(readings, 'gw-1')[0]!.pack;
  return {
    id: 1,
    boot: 'bootSign01',
    seq: [40, 42],
    createdMs: T * 1000,
    records: 3,
    pack,
    bytes: pack.length,
    level: 0,
    attempts: 0,
    ...over,
  };
}

describe('signing an outbox batch', () => {
  it('is a PROTOCOL.md §5 batch the ingest verifies, with the stored (boot, seq)', async () => {
    const pair = await generateKeyPair();
    const key = await importSigningKey(pair.privateJwk);
    const jws = await signOutboxBatch(key, batch(), false);
    const verified = await verifyBatch(jws, { keys: [pair.publicJwk] });
    const parsed = parseTelemetryBatch(verified.payload);
    expect(parsed).toMatchObject({ v: 1, boot: 'bootSign01', seq: [40, 42] });
    expect(parsed.records.every((r) => r.bf === undefined && r.cq === 'unsynced')).toBe(true);
    const late = parseTelemetryBatch(
      (await verifyBatch(await signOutboxBatch(key, batch(), true), { keys: [pair.publicJwk] }))
        .payload,
    );
    expect(late.records.every((r) => r.bf === true)).toBe(true);
    expect(late.seq).toEqual(parsed.seq);
  });

  it('calls a batch late when it waited longer than backfillAfter or is sent again', () => {
    const b = batch();
    expect(isBackfill(b, b.createdMs + 9_999, 10_000)).toBe(false);
    expect(isBackfill(b, b.createdMs + 10_001, 10_000)).toBe(true);
    expect(isBackfill({ ...b, attempts: 1 }, b.createdMs, 10_000)).toBe(true);
    // A clock set back does not make a batch "early".
    expect(isBackfill(b, b.createdMs - 3_600_000, 10_000)).toBe(false);
  });
});
