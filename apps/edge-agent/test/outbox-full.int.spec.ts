import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { waitFor } from '@outpost/test-kit/process';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectSensor,
  enrollGateway,
  outboxSnapshot,
  sleep,
  startAgent,
  storedPoints,
} from './support/agent-harness.js';

// Real parts: the ingest and the agent as processes. The agent first runs with its uplink
// pointed at a closed port (the cloud unreachable), so the outbox fills under its policy;
// then it runs again against the ingest, and what reaches the store is compared.

const T0 = 1_760_000_040; // on a minute boundary
const TOTAL = 600; // ten minutes of one reading a second
const MAX_BYTES = 6 * 1024;

describe('outbox full', () => {
  const services = useServices();
  let ingest: IngestHandle;
  let work: WorkDir;

  beforeAll(async () => {
    ingest = await services.add(startIngest());
    work = await makeWorkDir('outbox-full');
  });
  afterAll(async () => {
    await work?.cleanup();
  });

  async function fillThenDrain(policy: string) {
    const gw = `gw-${policy.replace(/-/g, '')}`;
    const child = `m-${policy.replace(/-/g, '')}`;
    const dataDir = work.join(gw);
    await enrollGateway(ingest, dataDir, gw, [child]);
    const overrides = {
      outbox: { maxBytes: MAX_BYTES, whenFull: policy },
      batch: { maxRecords: 20, maxAge: '100ms' },
    };
    const offline = await startAgent({
      dir: work.path,
      dataDir,
      name: `${gw}-offline`,
      overrides: { ...overrides, uplink: { mqtt: `mqtt://127.0.0.1:${await freePort()}` } },
    });
    const sensor = await connectSensor(offline.sensorPort);
    for (let k = 0; k < TOTAL; k += 20) {
      const values = Array.from({ length: 20 }, (_, i) => k + i);
      await sensor.publish(
        child,
        'n',
        values,
        values.map((v) => T0 + v),
      );
      await sleep(20);
    }
    await sleep(400);
    const counter = async (outcome: string) =>
      (await offline.metric('outpost_agent_outbox_records', { outcome })) ?? 0;
    const counters = {
      appended: await counter('appended'),
      dropped: await counter('dropped'),
      rejected: await counter('rejected'),
      downsampled: await counter('downsampled'),
      aggregates: await counter('aggregates'),
      pending: (await offline.metric('outpost_agent_outbox_pending_records')) ?? 0,
      bytes: (await offline.metric('outpost_agent_outbox_bytes')) ?? 0,
    };
    const refusedAtDoor =
      (await offline.metric('outpost_agent_readings_total', { outcome: 'refused' })) ?? 0;
    await sensor.end();
    await offline.stop();
    const held = outboxSnapshot(dataDir, gw);

    const online = await startAgent({ dir: work.path, dataDir, name: `${gw}-online`, overrides });
    await waitFor(async () => (await online.metric('outpost_agent_outbox_pending_records')) === 0, {
      what: 'drained',
      timeoutMs: 20_000,
    });
    await waitFor(() => storedPoints(ingest, child).length === held.stats.records, {
      what: 'stored',
      timeoutMs: 20_000,
    });
    await online.stop();
    return { counters, refusedAtDoor, held, stored: storedPoints(ingest, child) };
  }

  it('drop-oldest: keeps the newest readings within maxBytes and counts what it dropped', async () => {
    const { counters, stored } = await fillThenDrain('drop-oldest');
    expect(counters.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(counters.dropped).toBeGreaterThan(0);
    expect(counters.rejected).toBe(0);
    expect(counters.pending + counters.dropped).toBe(TOTAL);
    // What is stored is exactly the newest readings.
    expect(stored.map((p) => p.value)).toEqual(
      Array.from({ length: counters.pending }, (_, i) => TOTAL - counters.pending + i),
    );
  });

  it('reject-new: keeps the oldest readings and counts what it refused', async () => {
    const { counters, refusedAtDoor, stored } = await fillThenDrain('reject-new');
    expect(counters.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(counters.dropped).toBe(0);
    expect(counters.rejected).toBeGreaterThan(0);
    expect(refusedAtDoor).toBe(counters.rejected);
    expect(counters.pending + counters.rejected).toBe(TOTAL);
    expect(stored.map((p) => p.value)).toEqual(
      Array.from({ length: counters.pending }, (_, i) => i),
    );
  });

  it('downsample-oldest: merges old readings into per-minute means instead of losing minutes', async () => {
    const { counters, held, stored } = await fillThenDrain('downsample-oldest');
    expect(counters.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(counters.downsampled).toBeGreaterThan(0);
    expect(counters.aggregates).toBeLessThan(counters.downsampled);
    expect(counters.dropped).toBe(0);
    expect(counters.rejected).toBe(0);
    // Fewer points than readings, but every one of the ten minutes is still there.
    expect(stored.length).toBe(held.stats.records);
    expect(stored.length).toBeLessThan(TOTAL);
    const minutes = new Set(stored.map((p) => Math.floor(p.timeMs / 60_000)));
    expect(minutes.size).toBe(TOTAL / 60);
    // The oldest readings became means, stamped at the mean time of what they merged.
    expect(stored[0]!.timeMs).toBeGreaterThan(T0 * 1000);
    expect(stored[0]!.timeMs).toBeLessThan((T0 + 60) * 1000);
    expect(stored[0]!.value! % 1 !== 0 || stored[0]!.timeMs % 1000 !== 0).toBe(true);
    for (const p of stored) expect(p.value).toBeCloseTo(p.timeMs / 1000 - T0, 6);
    // The newest readings are still raw.
    expect(stored[stored.length - 1]).toMatchObject({
      timeMs: (T0 + TOTAL - 1) * 1000,
      value: TOTAL - 1,
    });
  });
});
