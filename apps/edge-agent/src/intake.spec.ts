import type { ClockQuality } from '@outpost/protocol/senml';
import { fakeClock } from '@outpost/test-kit/clock';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Intake, type Strangers } from './intake.js';
import { AgentMetrics } from './metrics/agent-metrics.js';
import { decodePack } from './outbox/downsample.js';
import { MemoryOutbox } from './outbox/memory-outbox.js';
import { batchConfigSchema } from './pipeline/batcher.js';
import { pipelineSchema } from './pipeline/filters.js';

// Real parts: the pipeline, the batcher, the SenML packing and the in-memory outbox.

const GW = 'gw-1';
const T = 1_750_000_000;
const intakes: Intake[] = [];
afterEach(() => {
  for (const i of intakes.splice(0)) i.stop();
});

function setup(
  options: {
    maxBytes?: number;
    batch?: Record<string, unknown>;
    pipeline?: unknown[];
    strangers?: Strangers;
  } = {},
) {
  const clock = fakeClock(T * 1000);
  let quality: ClockQuality = 'synced';
  const outbox = new MemoryOutbox({
    maxBytes: options.maxBytes ?? 1 << 30,
    whenFull: 'reject-new',
  });
  const metrics = new AgentMetrics({ defaultMetrics: false });
  let appended = 0;
  const intake = new Intake({
    outbox,
    publisherId: GW,
    bootId: 'bootTest01',
    pipeline: pipelineSchema.parse(options.pipeline ?? []),
    batch: batchConfigSchema.parse(options.batch ?? { maxRecords: 5, maxAge: '1s' }),
    clockQuality: () => quality,
    now: clock.now,
    monotonic: clock.now,
    metrics,
    logger: pino({ level: 'silent' }),
    onAppended: () => appended++,
    strangers: options.strangers,
  });
  intakes.push(intake);
  return {
    clock,
    outbox,
    metrics,
    intake,
    setQuality: (q: ClockQuality) => {
      quality = q;
    },
    appended: () => appended,
  };
}

const reading = (i: number, device = 'th-1') => ({
  device,
  metric: 'seq',
  time: T + i,
  value: i,
});

describe('Intake', () => {
  it('numbers records per boot without gaps and stamps the clock quality', () => {
    const { intake, outbox, setQuality, appended } = setup();
    intake.sink([0, 1, 2, 3, 4, 5, 6].map((i) => reading(i)));
    setQuality('unsynced');
    intake.sink([7, 8, 9].map((i) => reading(i)));
    const batches = outbox.take(10);
    expect(batches.map((b) => [b.boot, b.seq])).toEqual([
      ['bootTest01', [0, 4]],
      ['bootTest01', [5, 9]],
    ]);
    expect(appended()).toBe(2);
    const readings = batches.flatMap((b) => decodePack(b.pack, GW));
    expect(readings.map((r) => r.value)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(readings.map((r) => r.clock)).toEqual([
      ...Array(7).fill('synced'),
      ...Array(3).fill('unsynced'),
    ]);
    expect(intake.nextSeq).toBe(10);
  });

  it('cuts a batch by age on its own timer and everything held at stop', async () => {
    const { intake, outbox, clock } = setup({ batch: { maxRecords: 100, maxAge: '20ms' } });
    intake.sink([reading(0), reading(1)]);
    expect(outbox.stats().pending).toBe(0);
    clock.advance(25);
    await new Promise((r) => setTimeout(r, 40));
    expect(outbox.stats()).toMatchObject({ pending: 1, records: 2 });
    intake.sink([reading(2)]);
    intake.stop();
    expect(outbox.stats()).toMatchObject({ pending: 2, records: 3 });
    // After stop nothing more is taken.
    intake.sink([reading(3)]);
    expect(outbox.stats().records).toBe(3);
  });

  it('leaves out and counts readings SenML cannot carry, and keeps the rest', async () => {
    const { intake, outbox, metrics } = setup();
    // An unset clock (1970) and a name with a space: neither fits a SenML record.
    intake.sink([
      reading(0),
      { device: 'th-1', metric: 'seq', time: 12, value: 1 },
      { device: 'th-1', metric: 'bad name', time: T, value: 2 },
      reading(3),
    ]);
    intake.stop();
    const values = outbox.take(5).flatMap((b) => decodePack(b.pack, GW).map((r) => r.value));
    expect(values).toEqual([0, 3]);
    expect(await metrics.registry.getSingleMetricAsString('outpost_agent_readings_total')).toMatch(
      /outcome="invalid"\} 2/,
    );
  });

  it('counts what the outbox refused when full', async () => {
    const { intake, metrics } = setup({ maxBytes: 600 });
    for (let k = 0; k < 10; k++) intake.sink([0, 1, 2, 3, 4].map((i) => reading(k * 5 + i)));
    const text = await metrics.registry.getSingleMetricAsString('outpost_agent_readings_total');
    const refused = Number(/outcome="refused"\} (\d+)/.exec(text)?.[1]);
    const outboxed = Number(/outcome="outboxed"\} (\d+)/.exec(text)?.[1]);
    expect(refused).toBeGreaterThan(0);
    expect(refused + outboxed).toBe(50);
  });

  it('runs the pipeline first and applies a new one without losing what the old one held', () => {
    const { intake, outbox } = setup({
      pipeline: [{ range: { metric: 'seq', min: 0, max: 2 } }],
      batch: { maxRecords: 100, maxAge: '10s' },
    });
    intake.sink([0, 1, 2, 3, 4].map((i) => reading(i)));
    intake.reconfigure(pipelineSchema.parse([]), batchConfigSchema.parse({ maxRecords: 2 }));
    intake.sink([5, 6].map((i) => reading(i)));
    const values = outbox.take(10).flatMap((b) => decodePack(b.pack, GW).map((r) => r.value));
    expect(values).toEqual([0, 1, 2, 5, 6]);
  });

  it('keeps isolated devices in batches of their own, also after a reconfiguration', () => {
    const { intake, outbox } = setup({
      batch: { maxRecords: 100, maxAge: '10s' },
      strangers: { isolated: (id) => id === 'stranger-1', withheld: () => false },
    });
    intake.sink([reading(0), reading(1, 'stranger-1'), reading(2, 'th-2'), reading(3)]);
    intake.reconfigure(pipelineSchema.parse([]), batchConfigSchema.parse({ maxRecords: 100 }));
    intake.sink([reading(4, 'stranger-1'), reading(5, 'th-2')]);
    intake.stop();
    const devices = outbox
      .take(10)
      .map((b) => [...new Set(decodePack(b.pack, GW).map((r) => r.deviceId))]);
    expect(devices).toEqual([['th-1', 'th-2'], ['stranger-1'], ['th-2'], ['stranger-1']]);
  });

  it('quarantines the batches of a withheld device instead of sending them', async () => {
    const { intake, outbox, metrics, appended } = setup({
      batch: { maxRecords: 100, maxAge: '10s' },
      strangers: {
        isolated: (id) => id.startsWith('stranger-'),
        withheld: (id) => id === 'stranger-1',
      },
    });
    intake.sink([reading(0), reading(1, 'stranger-1'), reading(2, 'stranger-2'), reading(3)]);
    intake.sink([reading(4, 'stranger-1')]);
    intake.stop();
    const pending = outbox.take(10).map((b) => decodePack(b.pack, GW).map((r) => r.deviceId));
    expect(pending).toEqual([['th-1', 'th-1'], ['stranger-2']]);
    expect(appended()).toBe(1);
    const [held] = outbox.listQuarantine(5);
    expect(held).toMatchObject({ boot: 'bootTest01', records: 2, reason: 'not_child' });
    expect(held!.detail).toMatch(/stranger-1/);
    expect(decodePack(held!.pack, GW).map((r) => r.value)).toEqual([1, 4]);
    // Numbered like any batch of this boot, so every reading keeps a number of its own.
    expect([...pending.flat(), ...decodePack(held!.pack, GW)]).toHaveLength(5);
    expect(intake.nextSeq).toBe(5);
    const text = await metrics.registry.getSingleMetricAsString('outpost_agent_readings_total');
    expect(text).toMatch(/outcome="withheld"\} 2/);
    expect(text).toMatch(/outcome="outboxed"\} 3/);
  });

  it('hands out sequence numbers for batches made elsewhere that no batch of its own reuses', () => {
    const { intake, outbox } = setup();
    intake.sink([0, 1, 2, 3, 4].map((i) => reading(i)));
    expect(intake.claimSeq(3)).toEqual([5, 7]);
    intake.sink([5, 6, 7, 8, 9].map((i) => reading(i)));
    expect(outbox.take(5).map((b) => b.seq)).toEqual([
      [0, 4],
      [8, 12],
    ]);
    expect(intake.nextSeq).toBe(13);
  });
});
