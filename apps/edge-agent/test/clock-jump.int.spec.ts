import { performance } from 'node:perf_hooks';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { waitFor } from '@outpost/test-kit/process';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Agent } from '../src/agent.js';
import { parseConfig } from '../src/config.js';
import { enrollGateway, sleep, storedPoints, sumMetric } from './support/agent-harness.js';

// Real parts: the ingest as a process; the agent in this process (so its wall clock can be
// moved while its monotonic clock runs on), with its real local MQTT listener, SQLite
// outbox and MQTT uplink. The machine's clock is never touched.

const GW = 'gw-clock';
const CHILD = 'th-clock';
const HOUR = 3_600_000;

describe('wall-clock jumps', () => {
  const services = useServices();
  let ingest: IngestHandle;
  let work: WorkDir;
  let agent: Agent | undefined;
  let sensor: MqttClient | undefined;
  /** What the agent's wall clock is ahead of the real one. */
  let shift = 0;

  beforeAll(async () => {
    ingest = await services.add(startIngest());
    work = await makeWorkDir('clock-jump');
    await enrollGateway(ingest, work.join('data'), GW, [CHILD]);
  });
  afterAll(async () => {
    await sensor?.endAsync(true);
    await agent?.stop();
    await work?.cleanup();
  });

  const metric = async (name: string) =>
    sumMetric(await agent!.metrics.registry.metrics(), name) ?? 0;

  async function publish(name: string, count: number) {
    for (let i = 0; i < count; i++) {
      // A plain number: the source stamps it with the agent's wall clock.
      await sensor!.publishAsync(`sensors/${CHILD}/${name}`, String(i), { qos: 1 });
      await sleep(5);
    }
  }

  it('flags readings taken after a jump forwards or backwards as unsynced, keeps their wall-clock times, and keeps running', async () => {
    const sensorPort = await freePort();
    const config = parseConfig(
      stringify({
        dataDir: work.join('data'),
        sources: [{ mqtt: { listen: `127.0.0.1:${sensorPort}`, allowAnonymous: true } }],
        batch: { maxRecords: 50, maxAge: '100ms' },
        metrics: { listen: false },
        uplink: { backoff: { initial: '100ms', max: '500ms' }, http: { fallback: false } },
        clock: { timesyncd: false, checkEvery: '60s' },
      }),
    );
    agent = await Agent.start({
      config,
      logger: pino({ level: 'silent' }),
      now: () => Date.now() + shift,
      monotonic: () => performance.now(),
    });
    sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${sensorPort}`, { protocolVersion: 4 });
    await waitFor(() => agent!.sessionUp, { what: 'uplink connected' });
    // The ingest's Date header agrees with our clock: synced.
    await waitFor(async () => (await metric('outpost_agent_clock_synced')) === 1, {
      what: 'clock synced',
    });

    await publish('before', 20);
    const realBefore = Date.now();
    shift = HOUR; // someone sets the clock an hour ahead
    await sleep(50);
    await publish('forward', 20);
    shift = -HOUR; // ...and then two hours back
    await sleep(50);
    await publish('backward', 20);

    await waitFor(
      () =>
        ['before', 'forward', 'backward'].every(
          (m) => storedPoints(ingest, CHILD).filter((p) => p.metric === m).length === 20,
        ),
      { what: 'all readings stored', timeoutMs: 20_000 },
    );
    const points = storedPoints(ingest, CHILD);
    const of = (m: string) => points.filter((p) => p.metric === m);
    const UNSYNCED = 2;
    expect(of('before').every((p) => (p.marks & UNSYNCED) === 0)).toBe(true);
    expect(of('forward').every((p) => (p.marks & UNSYNCED) === UNSYNCED)).toBe(true);
    expect(of('backward').every((p) => (p.marks & UNSYNCED) === UNSYNCED)).toBe(true);
    // Wall-clock timestamps are kept as the clock said, not corrected.
    expect(of('forward')[0]!.timeMs).toBeGreaterThan(realBefore + HOUR - 5000);
    expect(of('backward')[0]!.timeMs).toBeLessThan(realBefore - HOUR + 60_000);
    expect(await metric('outpost_agent_clock_jumps_total')).toBe(2);
    // The ingest's Date header disagrees by an hour now: still unsynced, offset known.
    await waitFor(async () => (await metric('outpost_agent_clock_offset_seconds')) > 3000, {
      what: 'offset measured',
    });
    expect(await metric('outpost_agent_clock_synced')).toBe(0);

    // A new session needs a new device JWT: it is dated by the ingest's clock (our clock
    // plus the measured offset), so the broker accepts it although our clock is an hour off.
    const connects = await metric('outpost_agent_uplink_connects_total');
    await ingest.restart();
    await waitFor(
      async () =>
        (await metric('outpost_agent_uplink_connects_total')) > connects && agent!.sessionUp,
      {
        what: 'reconnected with a corrected token',
        timeoutMs: 20_000,
      },
    );
    expect(
      sumMetric(await agent.metrics.registry.metrics(), 'outpost_agent_uplink_connects_total', {
        result: 'connack_4',
      }) ?? 0,
    ).toBe(0);
    await publish('after', 5);
    await waitFor(
      () => storedPoints(ingest, CHILD).filter((p) => p.metric === 'after').length === 5,
      {
        what: 'readings after the reconnect stored',
      },
    );

    // Back to the right time (a correction is a jump too): the ingest agrees, synced again.
    shift = 0;
    await sleep(50);
    await waitFor(async () => (await metric('outpost_agent_clock_synced')) === 1, {
      what: 'synced again after the correction',
    });
  });
});
