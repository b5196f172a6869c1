import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  apiOf,
  enrollGateway,
  startAgent,
  storedPoints,
} from './support/agent-harness.js';

// Real parts, end to end: firmware-sim serial devices (the built `outpost-sim`) on socat pty
// pairs → the agent as a process (serial sources, outpost-line parser, outbox, uplink) → the
// ingest as a process → its SQLite store.

const SIM_MAIN = join(
  dirname(createRequire(import.meta.url).resolve('@outpost/firmware-sim/package.json')),
  'dist',
  'main.js',
);
const GW = 'gw-serial';
const DEVICES = ['sim-1', 'sim-2', 'sim-3'];

interface SimStats {
  devices: Record<string, { sent: Record<string, number> }>;
}

describe('serial devices to the cloud', () => {
  const services = useServices();
  let ingest: IngestHandle;
  let work: WorkDir;
  let agent: AgentProcess | undefined;
  const pairs: PtyPairHandle[] = [];
  const sims: ManagedProcess[] = [];

  beforeAll(async () => {
    ingest = await services.add(startIngest());
    work = await makeWorkDir('serial-e2e');
    await enrollGateway(ingest, work.join('data'), GW, DEVICES);
    for (let i = 0; i < DEVICES.length; i++) {
      pairs.push(await ptyPair({ workDir: work.path }));
    }
  });
  afterAll(async () => {
    for (const sim of sims) await sim.stop();
    await agent?.stop();
    for (const pair of pairs) await pair.stop();
    await work?.cleanup();
  });

  it('stores exactly what the simulated devices sent, and reports their ports and firmware', async () => {
    agent = await startAgent({
      dir: work.path,
      dataDir: work.join('data'),
      overrides: {
        sources: DEVICES.map((device, i) => ({
          serial: { port: pairs[i]!.appPath, device, parser: 'outpost-line' },
        })),
        state: { every: '2s' },
      },
    });
    // The agent holds every port before a device speaks (each waits for `ID?`), so nothing
    // is flushed away by the open.
    await waitFor(async () => (await agent!.metric('outpost_agent_port_open')) === DEVICES.length, {
      what: 'ports open',
    });
    for (const [i, device] of DEVICES.entries()) {
      sims.push(
        ManagedProcess.start({
          name: device,
          command: process.execPath,
          args: [
            SIM_MAIN,
            'serial-device',
            '--port',
            pairs[i]!.devicePath,
            '--id',
            device,
            '--metrics',
            't=sine:20:5:60,noise=0.1',
            'h=const:40,noise=1',
            '--rate',
            '20',
            '--seed',
            String(i + 1),
            '--firmware',
            `1.0.${i}`,
            '--wait-for-id',
            '--stats-file',
            work.join(`${device}.json`),
          ],
          logPath: work.join(`${device}.log`),
        }),
      );
    }
    // Let every device send a good number of readings (each starts once the agent's `ID?`
    // reaches it; on a loaded machine that can take a few seconds).
    await waitFor(
      async () => {
        for (const d of DEVICES) {
          try {
            const s = JSON.parse(await readFile(work.join(`${d}.json`), 'utf8')) as SimStats;
            if ((s.devices[d]?.sent.t ?? 0) <= 60) return false;
          } catch {
            return false;
          }
        }
        return true;
      },
      { what: 'readings from every device', timeoutMs: 60_000 },
    );
    for (const sim of sims) await sim.stop();
    const stats = await Promise.all(
      DEVICES.map(
        async (d) => JSON.parse(await readFile(work.join(`${d}.json`), 'utf8')) as SimStats,
      ),
    );
    const sent = DEVICES.map((d, i) => stats[i]!.devices[d]!.sent);
    for (const s of sent) expect(s.t).toBeGreaterThan(50);

    await waitFor(
      () =>
        DEVICES.every((d, i) => {
          const points = storedPoints(ingest, d);
          return (
            points.filter((p) => p.metric === 't').length === sent[i]!.t &&
            points.filter((p) => p.metric === 'h').length === sent[i]!.h
          );
        }),
      { what: 'stored counts equal sent counts', timeoutMs: 20_000 },
    );
    const reported = await waitFor(
      async () => {
        const d = await apiOf(ingest)('GET', `/api/v1/devices/${GW}`);
        const ports = (d.body.reportedState as { ports?: { path: string; state: string }[] } | null)
          ?.ports;
        return ports?.length === DEVICES.length && ports;
      },
      { what: 'ports in the reported state' },
    );
    expect(reported.map((p) => p.path).sort()).toEqual(pairs.map((p) => p.appPath).sort());
    expect(await agent.metric('outpost_agent_readings_total', { outcome: 'outboxed' })).toBe(
      sent.reduce((n, s) => n + s.t! + s.h!, 0),
    );
    // The gateway reports each child's firmware, as its `ID` line named it.
    for (const [i, d] of DEVICES.entries()) {
      await waitFor(
        async () => {
          const { body } = await apiOf(ingest)('GET', `/api/v1/devices/${d}`);
          const state = body.reportedState as { firmware?: { version?: string } } | null;
          return state?.firmware?.version === `1.0.${i}`;
        },
        { what: `${d} reported as running 1.0.${i}`, timeoutMs: 20_000 },
      );
    }
    // Each child's state went out under its id, which the broker allows a gateway for its
    // registered children only: one session all along.
    expect(await agent.metric('outpost_agent_uplink_connects_total', { result: 'accepted' })).toBe(
      1,
    );
  });
});
