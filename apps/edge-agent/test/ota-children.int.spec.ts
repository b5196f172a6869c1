import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { waitFor } from '@outpost/test-kit/process';
import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentProcess, apiOf, enrollGateway, startAgent } from './support/agent-harness.js';
import {
  createChildRollout,
  readingsAfter,
  type SimDevice,
  type SimStats,
  startSim,
  uploadSimFirmware,
  waitForRolloutEnd,
} from './support/ota-children.js';

// Real parts, end to end: the built ingest as a process (release keys, firmware and rollouts
// through its HTTP API, offers and OTA events over its MQTT broker), the built agent as a
// process (a gateway whose serial sources are its children: it takes their offers on their
// commands topics, downloads with its own device JWT, flashes through the §10 bootloader and
// reports under each child's id), and firmware-sim serial devices on socat pty pairs.

const GW = 'gw-children';
const HEALTHY = ['th-a', 'th-b', 'th-c', 'th-d'];
/** Reverts its new firmware shortly after the reboot: its health check fails. */
const SICKLY = 'th-e';
const CHILDREN = [...HEALTHY, SICKLY];
const HARDWARE = 'th-v2';

describe('a rollout to the serial children of a gateway', { timeout: 90_000 }, () => {
  const services = useServices();
  let ingest: IngestHandle;
  let work: WorkDir;
  let agent: AgentProcess | undefined;
  let key: KeyPair;
  const pairs = new Map<string, PtyPairHandle>();
  const sims = new Map<string, SimDevice>();

  async function simStats(id: string): Promise<SimStats> {
    return waitFor(async () => await sims.get(id)!.stats(), {
      what: `stats of ${id}`,
      timeoutMs: 10_000,
    });
  }

  /** Waits until the sim's own stats say it runs `version`. */
  async function expectRunning(id: string, version: string): Promise<SimStats> {
    return waitFor(
      async () => {
        const stats = await sims.get(id)!.stats();
        return stats?.version === version && stats;
      },
      { what: `${id} running ${version}`, timeoutMs: 15_000, process: sims.get(id)!.process },
    );
  }

  beforeAll(async () => {
    ingest = await services.add(startIngest({ env: { INGEST_OTA_TICK_MS: '200' } }));
    work = await makeWorkDir('ota-children');
    key = await generateKeyPair();
    const registered = await apiOf(ingest)('POST', '/api/v1/release-keys', {
      publicKey: key.publicJwk,
    });
    expect(registered.status).toBe(201);
    // The gateway enrolls after the key exists, so its identity trusts it; the children are
    // imported with the gateway as their parent (they never enroll themselves).
    await enrollGateway(ingest, work.join('data'), GW, CHILDREN);
    for (const id of CHILDREN) pairs.set(id, await ptyPair({ workDir: await work.mkdir(id) }));

    agent = await startAgent({
      dir: work.path,
      dataDir: work.join('data'),
      overrides: {
        sources: CHILDREN.map((id) => ({
          serial: {
            port: pairs.get(id)!.appPath,
            device: id,
            parser: 'outpost-line',
            identifyEvery: '500ms',
            reconnect: { initial: '100ms', max: '1s' },
          },
        })),
        state: { every: '2s' },
        ota: {
          download: {
            backoff: { initial: '200ms', max: '1s' },
            progressEvery: '500ms',
            idleTimeout: '5s',
          },
          serial: {
            ackTimeout: '5s',
            endTimeout: '10s',
            rebootTimeout: '15s',
            identifyEvery: '500ms',
            // Long enough for the sick device to revert (1 s after its reboot), short
            // enough for two waves to fit the suite's time.
            trial: '3s',
            progressEvery: '500ms',
          },
        },
      },
    });
    // Every port held before its device speaks, so no `ID` line is lost to the open.
    await waitFor(
      async () => (await agent!.metric('outpost_agent_port_open')) === CHILDREN.length,
      {
        what: 'serial ports open',
        process: agent.process,
      },
    );
    for (const [i, id] of CHILDREN.entries()) {
      sims.set(
        id,
        startSim({
          id,
          port: pairs.get(id)!.devicePath,
          hardware: HARDWARE,
          firmware: '1.0.0',
          statsFile: work.join(`${id}-stats.json`),
          logPath: work.join(`${id}.log`),
          seed: i + 1,
          extra: id === SICKLY ? ['--fail-health', '1s'] : [],
        }),
      );
    }
    // Readings from each child at the ingest: the agent has its `ID` (it answers `ID?`
    // before it sends readings) and the gateway's session is up.
    const since = Date.now() - 60_000;
    await waitFor(
      async () => {
        for (const id of CHILDREN) {
          if ((await readingsAfter(ingest, id, 't', since)).length === 0) return false;
        }
        return true;
      },
      { what: 'readings of every child stored', timeoutMs: 45_000, process: agent.process },
    );
  });

  afterAll(async () => {
    for (const sim of sims.values()) await sim.stop().catch(() => undefined);
    await agent?.stop();
    for (const pair of pairs.values()) await pair.stop().catch(() => undefined);
    await work?.cleanup();
  });

  it('updates the healthy children in waves, rolls the sick one back, and readings keep flowing', async () => {
    const { firmwareId } = await uploadSimFirmware(ingest, key, {
      version: '2.0.0',
      hardware: HARDWARE,
    });
    const rolloutId = await createChildRollout(ingest, {
      firmwareId,
      target: { gateways: [GW] },
      waves: [40, 100],
      soakSeconds: 0,
      // The failure rate is judged once all five finished: one sick device (20 %) must not
      // stop the rollout, whichever wave the rollout's order puts it in (judged earlier, a
      // sick device finishing first would be 100 %).
      abortFailureRate: 0.5,
      minDevices: CHILDREN.length,
    });
    const rollout = await waitForRolloutEnd(ingest, rolloutId, {
      timeoutMs: 60_000,
      process: agent!.process,
    });

    expect(rollout.status).toBe('completed');
    expect(rollout.devices.map((d) => d.deviceId).sort()).toEqual([...CHILDREN].sort());
    for (const id of HEALTHY) {
      expect(
        rollout.devices.find((d) => d.deviceId === id),
        id,
      ).toMatchObject({
        state: 'succeeded',
        reason: null,
        version: '2.0.0',
      });
    }
    const sick = rollout.devices.find((d) => d.deviceId === SICKLY);
    expect(sick).toMatchObject({ state: 'rolled_back', version: '1.0.0' });
    expect(sick?.reason).toMatch(/health/);

    // What the devices themselves say they run.
    for (const id of HEALTHY) {
      const stats = await expectRunning(id, '2.0.0');
      expect(stats.firmware.updates, id).toBe(1);
      expect(stats.firmware.reverts, id).toBe(0);
    }
    const sickStats = await expectRunning(SICKLY, '1.0.0');
    expect(sickStats.firmware.updates).toBe(1);
    expect(sickStats.firmware.reverts).toBe(1);

    // And what the registry shows: the gateway publishes each child's reported state.
    for (const [id, version] of [
      ...HEALTHY.map((h) => [h, '2.0.0'] as const),
      [SICKLY, '1.0.0'] as const,
    ]) {
      await waitFor(
        async () => {
          const { body } = await apiOf(ingest)('GET', `/api/v1/devices/${id}`);
          const state = body.reportedState as { firmware?: { version?: string } } | null;
          return state?.firmware?.version === version;
        },
        {
          what: `${id} reported as running ${version}`,
          timeoutMs: 20_000,
          process: agent!.process,
        },
      );
    }

    // Every child's readings still reach the ingest after the rollout ended.
    const finishedAt = Date.parse(rollout.finishedAt!);
    for (const id of CHILDREN) {
      await waitFor(async () => (await readingsAfter(ingest, id, 't', finishedAt)).length > 0, {
        what: `a reading of ${id} after the rollout`,
        timeoutMs: 20_000,
        process: agent!.process,
      });
    }
  });

  it('refuses firmware for other hardware: failed(hardware_mismatch), the device keeps its version', async () => {
    const target = HEALTHY[0]!;
    const before = await simStats(target);
    const { firmwareId } = await uploadSimFirmware(ingest, key, {
      version: '3.0.0',
      hardware: 'th-v9',
    });
    const rolloutId = await createChildRollout(ingest, {
      firmwareId,
      target: { devices: [target] },
      waves: [100],
      soakSeconds: 0,
      abortFailureRate: 1,
      minDevices: 1,
    });
    const rollout = await waitForRolloutEnd(ingest, rolloutId, {
      timeoutMs: 30_000,
      process: agent!.process,
    });
    expect(rollout.devices).toHaveLength(1);
    expect(rollout.devices[0]).toMatchObject({
      deviceId: target,
      state: 'failed',
      reason: 'hardware_mismatch',
      version: before.version,
    });
    // Nothing reached the bootloader: the device runs what it ran.
    const after = await simStats(target);
    expect(after.version).toBe(before.version);
    expect(after.firmware.begins).toBe(before.firmware.begins);
  });
});
