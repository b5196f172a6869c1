import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startVictoriaMetrics,
  type VictoriaMetricsHandle,
} from '@outpost/test-kit/victoria-metrics';
import { useServices } from '@outpost/test-kit/vitest';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DurableOutbox } from '../src/telemetry/durable-outbox.js';
import { InfluxTelemetryStore } from '../src/telemetry/influx-telemetry-store.js';
import { OutboxWriter } from '../src/telemetry/outbox-writer.js';
import type { TelemetryPoint } from '../src/telemetry/telemetry-store.js';

// Real: VictoriaMetrics (stopped and started again on the same port and data), the durable
// outbox on a SQLite file, the InfluxDB v2 write path, the writer with the system clock.
// VictoriaMetrics runs without dedup, so a point written twice would be counted twice.
const services = useServices();
let vm: VictoriaMetricsHandle;
const dir = mkdtempSync(join(tmpdir(), 'outpost-drain-'));

beforeAll(async () => {
  vm = await services.add(startVictoriaMetrics());
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = 1_700_000_000_000;
const DEVICES = 10;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('outbox drain while the store is down', () => {
  it('grows a backlog while VictoriaMetrics is stopped, then drains it: every point once', async () => {
    const outbox = new DurableOutbox({ path: join(dir, 'telemetry-outbox.db') });
    const store = new InfluxTelemetryStore({
      url: vm.url,
      api: 'v2',
      bucket: 'telemetry',
      timeoutMs: 2_000,
    });
    const writer = new OutboxWriter({
      outbox,
      store,
      clock: { now: () => Date.now() },
      random: Math.random,
      logger: pino({ level: 'silent' }),
      maxPointsPerWrite: 2_000,
      minBackoffMs: 50,
      maxBackoffMs: 400,
      idlePollMs: 100,
    });
    let seq = 0;
    let accepted = 0;
    /** One batch of 100 points per device, 10 ms apart, each point at its own millisecond. */
    const produce = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const batches = Array.from({ length: DEVICES }, (_, d) => {
          const points: TelemetryPoint[] = Array.from({ length: 100 }, (_, i) => ({
            device: `drain-${d}`,
            metric: 'load',
            timeMs: T0 + seq * 100 + i,
            value: seq + i / 100,
            tags: { site: 'lab' },
          }));
          return outbox.accept({
            publisher: `drain-${d}`,
            boot: 'boot-1',
            seq: [seq * 100, seq * 100 + 99],
            points,
          });
        });
        const outcomes = await Promise.all(batches);
        expect(outcomes.every((o) => o === 'accepted')).toBe(true);
        accepted += DEVICES * 100;
        seq++;
        await sleep(10);
      }
    };

    writer.start();
    try {
      await produce(1_000);
      await vi.waitFor(() => expect(outbox.stats().pendingPoints).toBe(0), { timeout: 10_000 });

      await vm.process.stop(); // graceful: VictoriaMetrics persists what it acknowledged
      await produce(3_000);
      const backlog = outbox.stats();
      expect(backlog.pendingPoints).toBeGreaterThan(50_000);
      expect(backlog.oldestMs).not.toBeNull();

      await vm.restart();
      await produce(1_000);
      await vi.waitFor(() => expect(outbox.stats().pendingPoints).toBe(0), {
        timeout: 30_000,
        interval: 100,
      });
      expect(outbox.stats()).toMatchObject({ pendingBatches: 0, quarantinedBatches: 0 });
    } finally {
      await writer.stop();
      await outbox.close();
      await store.close();
    }

    // VictoriaMetrics may take a moment after its restart before everything it acknowledged
    // is searchable on a loaded machine: wait until the count is reached (or exceeded, which
    // the exact checks below then catch), never less than everything.
    const exported = async () => {
      await vm.flush();
      return vm.exportSeries('{__name__="load_value"}');
    };
    await vi.waitFor(
      async () => {
        const all = await exported();
        expect(all.reduce((n, s) => n + s.timestamps.length, 0)).toBeGreaterThanOrEqual(accepted);
      },
      { timeout: 60_000, interval: 500 },
    );
    const series = await exported();
    expect(series).toHaveLength(DEVICES);
    let samples = 0;
    for (const s of series) {
      samples += s.timestamps.length;
      // Exactly once: as many distinct times as samples, and every time of every batch.
      expect(new Set(s.timestamps).size).toBe(s.timestamps.length);
      expect(s.timestamps.length).toBe(seq * 100);
    }
    expect(samples).toBe(accepted);
  }, 150_000);
});
