import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { waitFor } from '@outpost/test-kit/process';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  connectSensor,
  enrollGateway,
  ingestMetric,
  outboxSnapshot,
  sleep,
  startAgent,
  storedPoints,
} from './support/agent-harness.js';

// Real parts: the ingest and the agent as processes; `kill -9` of the agent while a local
// sensor streams into it and batches are in flight to the ingest.

const GW = 'gw-crash';
const CHILD = 'meter-1';
const T0 = 1_760_000_000;
const RATE_PER_S = 400;
const MAX_AGE_MS = 300;

describe('kill -9 of the agent mid-stream', () => {
  const services = useServices();
  let ingest: IngestHandle;
  let work: WorkDir;
  let dataDir: string;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    ingest = await services.add(startIngest());
    work = await makeWorkDir('agent-crash');
    dataDir = work.join('data');
    await enrollGateway(ingest, dataDir, GW, [CHILD]);
  });
  afterAll(async () => {
    await agent?.stop();
    await work?.cleanup();
  });

  it.each([
    [1, 'while the ingest hangs', -1],
    [2, 'as the ingest resumes', 0],
    [3, 'just after the ingest resumed', 15],
  ])(
    'loses no acknowledged or outboxed reading and stores none twice (crash %i: %s)',
    async (round, _when, afterResumeMs) => {
      agent = await startAgent({
        dir: work.path,
        dataDir,
        name: `agent-${round}`,
        overrides: { batch: { maxRecords: 40, maxAge: `${MAX_AGE_MS}ms` } },
      });
      const sensor = await connectSensor(agent.sensorPort);
      const base = round * 1_000_000;
      let next = 0;
      let acceptedLocally = -1;
      // Values 0, 1, 2, ... in order: what is stored must be a prefix of them.
      const stream = async (ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          const values = Array.from({ length: 8 }, (_, i) => base + next + i);
          await sensor.publish(
            CHILD,
            'n',
            values,
            values.map((v) => T0 + v / 1000),
          );
          acceptedLocally = next + 7;
          next += 8;
          await sleep((8 / RATE_PER_S) * 1000);
        }
      };
      await stream(1000);
      // The ingest hangs (SIGSTOP): a window of batches goes unacknowledged and the outbox
      // fills. The agent dies while the ingest hangs or as it resumes: batches already in the
      // ingest's socket are stored by it but never acknowledged to the agent, which sends
      // them again after its restart.
      ingest.process.signal('SIGSTOP');
      await stream(1500);
      if (afterResumeMs >= 0) {
        ingest.process.signal('SIGCONT');
        await sleep(afterResumeMs);
      }
      await agent.kill9();
      ingest.process.signal('SIGCONT');
      await sensor.end().catch(() => undefined);

      // What the dead agent's disk holds, and what the ingest had already.
      const held = outboxSnapshot(dataDir, GW)
        .readings.filter((r) => r.deviceId === CHILD)
        .map((r) => r.value as number)
        .filter((v) => v >= base);
      await sleep(500);
      const storedAtCrash = storedPoints(ingest, CHILD)
        .map((p) => p.value!)
        .filter((v) => v >= base);

      agent = await startAgent({ dir: work.path, dataDir, name: `agent-${round}b` });
      await waitFor(
        async () => (await agent!.metric('outpost_agent_outbox_pending_records')) === 0,
        {
          what: 'outbox drained after the restart',
          timeoutMs: 30_000,
        },
      );
      await waitFor(
        () => {
          const n = storedPoints(ingest, CHILD).filter((p) => p.value! >= base).length;
          return n >= new Set([...held, ...storedAtCrash]).size;
        },
        { what: 'held readings stored', timeoutMs: 30_000 },
      );
      await agent.stop();
      agent = undefined;

      const stored = storedPoints(ingest, CHILD)
        .map((p) => p.value!)
        .filter((v) => v >= base);
      const storedSet = new Set(stored);
      // Nothing outboxed or acknowledged is lost.
      for (const v of held) expect(storedSet.has(v), `outboxed ${v}`).toBe(true);
      for (const v of storedAtCrash) expect(storedSet.has(v), `stored ${v}`).toBe(true);
      // Nothing is stored twice, and what is stored is exactly a prefix of the stream: only
      // the readings still in the batcher (memory) when the agent died can be missing.
      expect(stored.length).toBe(storedSet.size);
      const offsets = stored.map((v) => v - base).sort((a, b) => a - b);
      expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i));
      const lost = acceptedLocally + 1 - offsets.length;
      expect(lost).toBeGreaterThanOrEqual(0);
      // At most what arrives within one batch age (plus one publish) was only in memory.
      expect(lost).toBeLessThanOrEqual(Math.ceil((RATE_PER_S * (MAX_AGE_MS + 200)) / 1000) + 40);
      // The drill did crash mid-stream. While the ingest hangs the outbox cannot drain, so
      // readings are on disk; just after it resumed, the outbox may have emptied already.
      if (afterResumeMs < 0) expect(held.length).toBeGreaterThan(0);
      else expect(held.length + storedAtCrash.length).toBeGreaterThan(0);
    },
  );

  it('had the ingest recognise resends of batches it already held (same boot and seq) as duplicates', async () => {
    const duplicates = await ingestMetric(ingest, 'outpost_ingest_batches_total', {
      outcome: 'duplicate',
    });
    expect(duplicates).toBeGreaterThan(0);
  });
});
