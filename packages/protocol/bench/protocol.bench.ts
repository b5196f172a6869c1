import { bench, describe } from 'vitest';
import { realisticReadings } from '../src/fixtures/batches.js';
import { compressPack, resolveSenml, toReadings } from '../src/senml.js';
import { parseTelemetryBatch } from '../src/telemetry.js';

const PUBLISHER = 'gw-hall-1';
const NOW = 1_767_230_000;

/** The JSON payload of a signed 100-record batch, as it stands after JWS verification. */
const payload = JSON.stringify({
  v: 1,
  boot: '3f9c0a1e5b7d',
  seq: [1200, 1299],
  records: compressPack(realisticReadings(100, { publisherId: PUBLISHER }), PUBLISHER),
});

describe('100-record batch', () => {
  bench('JSON.parse (floor)', () => {
    JSON.parse(payload);
  });

  bench('parse + validate + resolve', () => {
    const batch = parseTelemetryBatch(JSON.parse(payload));
    toReadings(resolveSenml(batch.records, { now: NOW }), PUBLISHER);
  });
});
