import { compressPack } from '@outpost/protocol/senml';
import { formatReading, LineSplitter } from '@outpost/protocol/serial-line';
import { bench, describe } from 'vitest';
import { Batcher, batchConfigSchema } from '../src/pipeline/batcher.js';
import { Pipeline, pipelineSchema } from '../src/pipeline/filters.js';
import { createParser, parserConfigSchema } from '../src/sources/line-parsers.js';
import { type SourceReading, toReading } from '../src/sources/source.js';

// In-process, one core: serial bytes → lines → readings → pipeline steps → batches.
// Signing and the outbox come after this (the agent core's benches). Never asserts time.
// Each op of the second group moves 1,000 readings: readings/s = ops/s × 1,000.

const GW = 'gw-hall-1';
const DEVICE = 'boiler-7';
const T0 = Date.UTC(2026, 0, 1);

/** `count` PROTOCOL.md §10 lines of two values each, as the bytes a port delivers. */
function serialBytes(count: number): Buffer {
  let text = '';
  for (let i = 0; i < count; i++) {
    text += formatReading([
      ['t', Math.round((20 + 5 * Math.sin(i / 10)) * 100) / 100],
      ['vibration', Math.round(Math.abs(Math.cos(i)) * 1000) / 1000],
    ]);
  }
  return Buffer.from(text, 'latin1');
}

const LINES_1000 = serialBytes(1000);
const READINGS_1000 = serialBytes(500); // two values per line

const parser = createParser(parserConfigSchema.parse('outpost-line') as never);

function parseAll(bytes: Buffer, splitter: LineSplitter, now: number): SourceReading[] {
  const out: SourceReading[] = [];
  const time = now / 1000;
  for (const line of splitter.push(bytes)) {
    const result = parser.parse(line);
    if (!result.ok) continue;
    for (const [metric, value] of result.values) out.push({ device: DEVICE, metric, time, value });
  }
  return out;
}

const pipelineConfig = pipelineSchema.parse([
  { range: { metric: 't', min: -40, max: 125 } },
  { deadband: { metric: 't', delta: 0.01, maxSilence: '60s' } },
  { aggregate: { metric: 'vibration', every: '1s', fn: ['mean', 'max'] } },
  { units: { metric: 't', from: 'Cel', to: 'K' } },
]);

function chain() {
  const splitter = new LineSplitter();
  const pipeline = new Pipeline(pipelineConfig);
  const batcher = new Batcher(batchConfigSchema.parse({ maxRecords: 500 }), { publisherId: GW });
  let now = T0;
  return {
    /** One op: 1,000 readings through parse → filter → batch; returns what was cut. */
    run(pack = false): number {
      now += 50;
      const parsed = parseAll(READINGS_1000, splitter, now);
      const filtered = [...pipeline.process(parsed, now), ...pipeline.tick(now)];
      const batches = batcher.add(
        filtered.map((r) => toReading(r, 'synced')),
        now,
      );
      batches.push(...batcher.tick(now));
      if (pack) for (const batch of batches) compressPack(batch.readings, GW);
      return batches.length;
    },
  };
}

describe('parse 1,000 outpost-line lines', () => {
  const splitter = new LineSplitter();

  bench('split only (floor)', () => {
    splitter.push(LINES_1000);
  });

  bench('split + parse with CRC-8 check', () => {
    parseAll(LINES_1000, splitter, T0);
  });
});

describe('1,000 readings: parse → filter → batch', () => {
  const parseOnly = new LineSplitter();
  const full = chain();
  const packed = chain();

  bench('split + parse (floor)', () => {
    parseAll(READINGS_1000, parseOnly, T0);
  });

  bench('parse → filter → batch (1,000 readings/op)', () => {
    full.run();
  });

  bench('parse → filter → batch → SenML pack (1,000 readings/op)', () => {
    packed.run(true);
  });
});
