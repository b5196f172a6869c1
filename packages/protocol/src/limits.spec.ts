import { describe, expect, it } from 'vitest';
import { parsePayload } from './errors.js';
import { realisticReadings } from './fixtures/batches.js';
import {
  CLOCK_SKEW_S,
  MAX_DEVICE_JWT_LIFETIME_S,
  MAX_MESSAGE_BYTES,
  MAX_RECORDS_PER_BATCH,
  MAX_SENML_NAME_LENGTH,
  MAX_STRING_VALUE_LENGTH,
  MAX_TOPIC_LENGTH,
} from './limits.js';
import { compressPack, parseSenmlPack, resolveSenml, toReadings } from './senml.js';
import { parseTelemetryBatch, telemetryBatchSchema } from './telemetry.js';
import { topics } from './topics.js';

describe('limits', () => {
  it('match PROTOCOL.md §3 and §5', () => {
    expect(MAX_MESSAGE_BYTES).toBe(256 * 1024);
    expect(MAX_RECORDS_PER_BATCH).toBe(5000);
    expect(MAX_DEVICE_JWT_LIFETIME_S).toBe(86_400);
    expect(CLOCK_SKEW_S).toBe(60);
  });

  it('accept a batch of exactly MAX_RECORDS_PER_BATCH records and refuse one more', () => {
    const readings = realisticReadings(MAX_RECORDS_PER_BATCH);
    const records = compressPack(readings, 'gw-hall-1');
    const batch = { v: 1, boot: 'abcdef0123', seq: [0, MAX_RECORDS_PER_BATCH - 1], records };
    const parsed = parseTelemetryBatch(batch);
    expect(toReadings(resolveSenml(parsed.records, { now: 1_800_000_000 }), 'gw-hall-1')).toEqual(
      readings,
    );
    const over = { ...batch, records: [...records, { n: 'x', v: 1 }] };
    expect(() => parseTelemetryBatch(over)).toThrow(
      expect.objectContaining({ code: 'too_many_records' }),
    );
  });

  it('let a full batch of compact records fit in one message even as a JWS (base64url, +1/3)', () => {
    // One metric every second: `{"n":"temp","t":17,"v":21.5}`. Richer records (units, child
    // base names, millisecond times) run out of bytes first, so batchers bound both.
    const readings = Array.from({ length: MAX_RECORDS_PER_BATCH }, (_, i) => ({
      deviceId: 'gw-hall-1',
      metric: 'temp',
      time: 1_767_225_600 + i,
      value: 21.5,
      backfilled: false,
      clock: undefined,
    }));
    const records = compressPack(readings, 'gw-hall-1');
    const payload = JSON.stringify({ v: 1, boot: 'abcdef0123', seq: [0, 4999], records });
    const jwsBytes = Math.ceil((new TextEncoder().encode(payload).length * 4) / 3) + 200;
    expect(jwsBytes).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(telemetryBatchSchema.safeParse(JSON.parse(payload)).success).toBe(true);
  });

  it('bound string values at MAX_STRING_VALUE_LENGTH', () => {
    expect(parseSenmlPack([{ n: 'a', vs: 'x'.repeat(MAX_STRING_VALUE_LENGTH) }])).toHaveLength(1);
    expect(() =>
      parseSenmlPack([{ n: 'a', vs: 'x'.repeat(MAX_STRING_VALUE_LENGTH + 1) }]),
    ).toThrow();
  });

  it('bound names at MAX_SENML_NAME_LENGTH', () => {
    expect(() => parseSenmlPack([{ n: 'a'.repeat(MAX_SENML_NAME_LENGTH), v: 1 }])).not.toThrow();
    expect(() => parseSenmlPack([{ n: 'a'.repeat(MAX_SENML_NAME_LENGTH + 1), v: 1 }])).toThrow();
  });

  it('leave room for the longest valid topic under MAX_TOPIC_LENGTH', () => {
    expect(topics.telemetry('a'.repeat(64)).length).toBeLessThan(MAX_TOPIC_LENGTH);
    expect(topics.commands('a'.repeat(64)).length).toBeLessThan(MAX_TOPIC_LENGTH);
  });

  it('are reported through parsePayload as schema issues', () => {
    expect(() => parsePayload(telemetryBatchSchema, { v: 1 })).toThrow(
      expect.objectContaining({ kind: 'invalid', code: 'payload_invalid' }),
    );
  });
});
