import type { Reading } from '@outpost/protocol/senml';
import { describe, expect, it } from 'vitest';
import { decodePack } from '../outbox/downsample.js';
import { packReadings } from '../outbox/pack.js';
import { splitNotChild } from './not-child.js';

// Real parts: SenML packing and decoding as the outbox stores batches.

const GW = 'gw-1';
const T = 1_750_000_000;
const REGISTERED = new Set(['th-1', 'th-2']);
const registered = (id: string) => id === GW || REGISTERED.has(id);

function reading(deviceId: string, i: number, extra: Partial<Reading> = {}): Reading {
  return {
    deviceId,
    metric: i % 2 === 0 ? 'temperature' : 'humidity',
    time: T + i * 0.25,
    value: 20 + i,
    unit: i % 2 === 0 ? 'Cel' : '%RH',
    backfilled: false,
    clock: i % 3 === 0 ? 'unsynced' : 'synced',
    ...extra,
  };
}

const pack = (readings: Reading[]) => packReadings(readings, GW)[0]!.pack;

describe('splitNotChild', () => {
  it('keeps the readings of the gateway and registered children, in order, and sets the others apart', () => {
    const readings = [
      reading('th-1', 0),
      reading('stranger-1', 1),
      reading(GW, 2),
      reading('th-2', 3),
      reading('stranger-2', 4),
      reading('th-1', 5),
      reading('stranger-1', 6),
    ];
    const { strangers, parts } = splitNotChild({ pack: pack(readings) }, GW, registered);
    expect(strangers).toEqual(['stranger-1', 'stranger-2']);
    expect(parts).toBeDefined();
    expect(parts!.requeue).toHaveLength(1);
    const kept = parts!.requeue.flatMap((p) => decodePack(p.pack, GW));
    expect(kept).toEqual(readings.filter((r) => registered(r.deviceId)));
    expect(parts!.requeue[0]).toMatchObject({ records: 4 });
    expect(parts!.requeue[0]!.weights).toBeUndefined();
    expect(decodePack(parts!.quarantine.pack, GW)).toEqual(
      readings.filter((r) => !registered(r.deviceId)),
    );
    expect(parts!.quarantine.records).toBe(3);
  });

  it('carries the weights of the kept aggregates', () => {
    const readings = [reading('th-1', 0), reading('stranger-1', 1), reading('th-2', 2)];
    const { parts } = splitNotChild({ pack: pack(readings), weights: [6, 7, 8] }, GW, registered);
    expect(parts!.requeue.map((p) => p.weights)).toEqual([[6, 8]]);
  });

  it('has nothing to split when no reading is of a known device', () => {
    const readings = [reading('stranger-1', 0), reading('stranger-2', 1)];
    expect(splitNotChild({ pack: pack(readings) }, GW, registered)).toEqual({
      strangers: ['stranger-1', 'stranger-2'],
      parts: undefined,
    });
  });

  it('has nothing to split when every reading is of a known device (the refusal says it is not)', () => {
    const readings = [reading('th-1', 0), reading(GW, 1)];
    expect(splitNotChild({ pack: pack(readings) }, GW, registered)).toEqual({
      strangers: [],
      parts: undefined,
    });
  });

  it('leaves a pack that does not decode whole', () => {
    expect(splitNotChild({ pack: '{not json' }, GW, registered)).toEqual({
      strangers: [],
      parts: undefined,
    });
  });
});
