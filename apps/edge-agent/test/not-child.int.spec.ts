import { readFile } from 'node:fs/promises';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePack } from '../src/outbox/downsample.js';
import {
  type AgentProcess,
  apiOf,
  enrollGateway,
  outboxSnapshot,
  sleep,
  startAgent,
} from './support/agent-harness.js';
import { SIM_MAIN } from './support/ota-children.js';

// Real parts, end to end: the built ingest as a process (registry, broker, child check,
// telemetry store behind its HTTP API), the built agent as a process (serial sources,
// batcher, SQLite outbox, uplink), and firmware-sim serial devices on socat pty pairs. Two
// of the devices are registered children of the gateway; the third is registered nowhere,
// so every batch holding one of its readings is refused as `not_child`.

const GW = 'gw-mixed';
const CHILDREN = ['th-a', 'th-b'];
const STRANGER = 'th-stranger';
const DEVICES = [...CHILDREN, STRANGER];
const METRICS = ['t', 'h'] as const;

interface SimStats {
  devices: Record<string, { sent: Record<string, number> }>;
}

describe('a gateway with a device that is not its registered child', { timeout: 120_000 }, () => {
  const services = useServices();
  let ingest: IngestHandle;
  let work: WorkDir;
  let agent: AgentProcess | undefined;
  const pairs = new Map<string, PtyPairHandle>();
  const sims = new Map<string, ManagedProcess>();
  const startedAt = Date.now();

  function startSim(id: string, seed: number): void {
    sims.set(
      id,
      ManagedProcess.start({
        name: id,
        command: process.execPath,
        args: [
          SIM_MAIN,
          'serial-device',
          '--port',
          pairs.get(id)!.devicePath,
          '--id',
          id,
          '--metrics',
          't=sine:20:5:60,noise=0.1',
          'h=const:40,noise=1',
          // A line every 50 ms: any batch the stranger's first reading joins holds
          // readings of the children too.
          '--rate',
          '20',
          '--seed',
          String(seed),
          '--wait-for-id',
          '--stats-file',
          work.join(`${id}.json`),
        ],
        logPath: work.join(`${id}.log`),
      }),
    );
  }

  async function sent(id: string): Promise<Record<string, number> | undefined> {
    try {
      const stats = JSON.parse(await readFile(work.join(`${id}.json`), 'utf8')) as SimStats;
      return stats.devices[id]?.sent;
    } catch {
      return undefined; // not written yet, or caught mid-write
    }
  }

  /** How many readings of `metric` the ingest stored for `device`, through its HTTP API. */
  async function storedCount(device: string, metric: string): Promise<number> {
    const query = new URLSearchParams({
      metric,
      from: String(startedAt - 60_000),
      to: 'now',
      limit: '10000',
    });
    const res = await apiOf(ingest)('GET', `/api/v1/devices/${device}/telemetry?${query}`);
    if (res.status !== 200) throw new Error(`telemetry of ${device}: HTTP ${res.status}`);
    return (res.body.points as unknown[]).length;
  }

  const splits = async () => (await agent!.metric('outpost_agent_uplink_batches_split_total')) ?? 0;
  const refusals = async () =>
    (await agent!.metric('outpost_agent_uplink_batches_rejected_total', { reason: 'not_child' })) ??
    0;

  beforeAll(async () => {
    ingest = await services.add(startIngest());
    work = await makeWorkDir('not-child');
    // Only the two children are imported with the gateway as their parent.
    await enrollGateway(ingest, work.join('data'), GW, CHILDREN);
    for (const id of DEVICES) pairs.set(id, await ptyPair({ workDir: await work.mkdir(id) }));
    agent = await startAgent({
      dir: work.path,
      dataDir: work.join('data'),
      overrides: {
        sources: DEVICES.map((device) => ({
          serial: { port: pairs.get(device)!.appPath, device, parser: 'outpost-line' },
        })),
        state: { every: '2s' },
      },
    });
    await waitFor(async () => (await agent!.metric('outpost_agent_port_open')) === DEVICES.length, {
      what: 'ports open',
      process: agent.process,
    });
    // The broker granted the children's commands topics and refused the stranger's: the
    // agent knows whose readings the ingest takes before any arrive.
    await waitFor(
      async () => (await agent!.metric('outpost_agent_children_registered')) === CHILDREN.length,
      { what: 'children subscriptions answered', process: agent.process },
    );
  });

  afterAll(async () => {
    for (const sim of sims.values()) await sim.stop().catch(() => undefined);
    await agent?.stop();
    for (const pair of pairs.values()) await pair.stop().catch(() => undefined);
    await work?.cleanup();
  });

  it("stores every reading of the registered children and quarantines only the stranger's", async () => {
    // The children first, then the stranger: its first readings share batches with theirs.
    for (const [i, id] of CHILDREN.entries()) startSim(id, i + 1);
    await waitFor(async () => ((await sent(CHILDREN[0]!))?.t ?? 0) > 20, {
      what: 'children sending',
      process: agent!.process,
    });
    startSim(STRANGER, 9);

    // A shared batch is refused and split; the stranger is then kept apart.
    await waitFor(async () => (await splits()) > 0, {
      what: 'a refused batch split',
      timeoutMs: 20_000,
      process: agent!.process,
    });
    await waitFor(async () => (await agent!.metric('outpost_agent_isolated_devices')) === 1, {
      what: 'the stranger isolated',
      process: agent!.process,
    });
    // Later batches are not refused at all: the children's go out without the stranger's
    // readings, and the stranger's, whose commands topic the broker refuses too, are
    // quarantined by the agent instead of sent.
    await sleep(2_000);
    const refusedAfterIsolation = await refusals();
    const splitsAfterIsolation = await splits();
    await waitFor(async () => ((await sent(STRANGER))?.t ?? 0) > 100, {
      what: 'the stranger sending on',
      timeoutMs: 30_000,
      process: agent!.process,
    });
    expect(await refusals()).toBe(refusedAfterIsolation);
    expect(await splits()).toBe(splitsAfterIsolation);
    expect(
      await agent!.metric('outpost_agent_readings_total', { outcome: 'withheld' }),
    ).toBeGreaterThan(0);
    // Few refusals, so the ingest never closed the gateway's session for too many of them.
    expect(await agent!.metric('outpost_agent_uplink_connects_total', { result: 'accepted' })).toBe(
      1,
    );

    for (const sim of sims.values()) await sim.stop();
    const counts = new Map<string, Record<string, number>>();
    for (const id of DEVICES) counts.set(id, (await sent(id))!);
    for (const id of DEVICES) expect(counts.get(id)!.t).toBeGreaterThan(50);

    // Every reading of the registered children reached the ingest's store.
    await waitFor(
      async () => {
        for (const id of CHILDREN) {
          for (const metric of METRICS) {
            if ((await storedCount(id, metric)) !== counts.get(id)![metric]) return false;
          }
        }
        return true;
      },
      { what: 'stored counts equal sent counts', timeoutMs: 30_000, process: agent!.process },
    );
    // The ingest holds nothing of the stranger; the agent's quarantine holds all of it,
    // refused as not_child, and nothing of the children.
    const stranger = await apiOf(ingest)('GET', `/api/v1/devices/${STRANGER}`);
    expect(stranger.status).toBe(404);
    const quarantined = await waitFor(
      async () => {
        const { stats, quarantine } = outboxSnapshot(work.join('data'), GW);
        const readings = quarantine.flatMap((q) => decodePack(q.pack, GW));
        const complete = METRICS.every(
          (m) =>
            readings.filter((r) => r.deviceId === STRANGER && r.metric === m).length ===
            counts.get(STRANGER)![m],
        );
        return complete && stats.pending === 0 && { quarantine, readings };
      },
      { what: "the stranger's readings quarantined", timeoutMs: 30_000, process: agent!.process },
    );
    expect(new Set(quarantined.quarantine.map((q) => q.reason))).toEqual(new Set(['not_child']));
    expect(new Set(quarantined.readings.map((r) => r.deviceId))).toEqual(new Set([STRANGER]));
    // The split batches' registered readings went out again under new numbers.
    expect(
      await agent!.metric('outpost_agent_outbox_records', { outcome: 'requeued' }),
    ).toBeGreaterThan(0);
  });
});
