import { MAX_RECORDS_PER_BATCH } from '@outpost/protocol/limits';
import { parseSenmlPack, resolveSenml, toReadings } from '@outpost/protocol/senml';
import { parseTelemetryBatch } from '@outpost/protocol/telemetry';
import { describe, expect, it } from 'vitest';
import { BatchBuilder, type BatchEnvelope, type TimedReading } from './telemetry-batch.js';

const T0 = 1_700_000_000_000;

function readings(n: number, from = 0): TimedReading[] {
  return Array.from({ length: n }, (_, i) => ({
    timeMs: T0 + (from + i) * 250,
    values: [
      ['t', 20 + i],
      ['h', 40.5],
    ],
  }));
}

describe('BatchBuilder', () => {
  it('numbers records with consecutive seq ranges of its boot', () => {
    const builder = new BatchBuilder('pump-1', { boot: 'a1b2c3d4e5f6a7b8', signed: true });
    const first = builder.build(readings(3));
    const second = builder.build(readings(2, 3));
    expect(first.seq).toEqual([1, 6]);
    expect(second.seq).toEqual([7, 10]);
    expect(builder.nextSeq).toBe(11);
    expect(first.readings).toBe(3);
    expect(first.values).toEqual({ t: 3, h: 3 });
    const envelope = first.body as BatchEnvelope;
    expect(envelope).toMatchObject({ v: 1, boot: 'a1b2c3d4e5f6a7b8', seq: [1, 6] });
    // The envelope is what the ingest validates before verifying records.
    expect(() => parseTelemetryBatch(envelope)).not.toThrow();
  });

  it('carries every reading at its time, as the ingest resolves it (RFC 8428 §4.6)', () => {
    const builder = new BatchBuilder('pump-1', { boot: 'bootbootboot', signed: true });
    const built = builder.build(readings(4));
    const records = (built.body as BatchEnvelope).records;
    const back = toReadings(resolveSenml(parseSenmlPack(records), { now: 0 }), 'pump-1');
    expect(back).toHaveLength(8);
    expect(back.slice(0, 2)).toEqual([
      expect.objectContaining({ deviceId: 'pump-1', metric: 't', time: T0 / 1000, value: 20 }),
      expect.objectContaining({ deviceId: 'pump-1', metric: 'h', time: T0 / 1000, value: 40.5 }),
    ]);
    expect(back.at(-1)).toMatchObject({ metric: 'h', time: (T0 + 750) / 1000 });
  });

  it('makes a bare SenML pack when unsigned, still counting seq', () => {
    const builder = new BatchBuilder('pump-2', { boot: 'bootbootboot', signed: false });
    const built = builder.build(readings(2));
    expect(Array.isArray(built.body)).toBe(true);
    expect(() => parseSenmlPack(built.body)).not.toThrow();
    expect(built.seq).toEqual([1, 4]);
  });

  it('makes a batch the service must refuse, naming its boot and seq', () => {
    const builder = new BatchBuilder('pump-1', { boot: 'bootbootboot', signed: true });
    const built = builder.build(readings(1), true);
    const envelope = built.body as BatchEnvelope;
    expect(() => parseTelemetryBatch(envelope)).toThrow(/must-understand/);
    expect(envelope.seq).toEqual([1, 2]);
    expect(builder.build(readings(1)).seq).toEqual([3, 4]);
  });

  it('refuses more records than a batch may hold', () => {
    const builder = new BatchBuilder('pump-1', { boot: 'bootbootboot', signed: true });
    expect(() => builder.build(readings(MAX_RECORDS_PER_BATCH / 2 + 1))).toThrow(RangeError);
    expect(builder.nextSeq).toBe(1);
  });
});
