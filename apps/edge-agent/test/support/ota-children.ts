import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { buildFirmwareImage } from '@outpost/firmware-sim/firmware-image';
import type { KeyPair } from '@outpost/signing/keys';
import type { IngestHandle } from '@outpost/test-kit/ingest';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import { apiOf } from './agent-harness.js';
import { type RolloutDevice, uploadFirmware } from './ota-harness.js';

/**
 * Rollouts to the serial children of a gateway: firmware-sim devices (the built
 * `outpost-sim serial-device`) behind the agent's serial sources, images built the way the
 * sim's bootloader reads them, and the rollout as the API shows it.
 */
export const SIM_MAIN = join(
  dirname(createRequire(import.meta.url).resolve('@outpost/firmware-sim/package.json')),
  'dist',
  'main.js',
);

/** What the sim writes to its stats file for one device. */
export interface SimStats {
  version: string;
  sent: Record<string, number>;
  firmware: { begins: number; chunksOk: number; errors: number; updates: number; reverts: number };
}

export interface SimDevice {
  readonly id: string;
  readonly process: ManagedProcess;
  /** The sim's own counters: the version it runs, readings sent, bootloader activity. */
  stats(): Promise<SimStats | undefined>;
  stop(): Promise<void>;
}

/**
 * `outpost-sim serial-device` on the device end of a pty pair, as `hardware` running
 * `firmware`, quiet until the agent asks `ID?` (so its identity is the first thing the agent
 * reads), writing its stats often enough to see a flash or a revert soon after it happened.
 */
export function startSim(options: {
  id: string;
  port: string;
  hardware: string;
  firmware: string;
  statsFile: string;
  logPath: string;
  seed: number;
  extra?: readonly string[];
}): SimDevice {
  const proc = ManagedProcess.start({
    name: `sim-${options.id}`,
    command: process.execPath,
    args: [
      SIM_MAIN,
      'serial-device',
      '--port',
      options.port,
      '--id',
      options.id,
      '--hardware',
      options.hardware,
      '--serial',
      `SN-${options.id}`,
      '--firmware',
      options.firmware,
      '--metrics',
      't=sine:20:5:60',
      'h=const:40',
      // Few readings: five devices and two services share two cores with other suites.
      '--rate',
      '4',
      '--seed',
      String(options.seed),
      '--reboot-ms',
      '300',
      '--wait-for-id',
      '--stats-file',
      options.statsFile,
      '--stats-interval',
      '200ms',
      ...(options.extra ?? []),
    ],
    logPath: options.logPath,
    stopTimeoutMs: 5_000,
  });
  return {
    id: options.id,
    process: proc,
    async stats() {
      try {
        const all = JSON.parse(await readFile(options.statsFile, 'utf8')) as {
          devices: Record<string, SimStats>;
        };
        return all.devices[options.id];
      } catch {
        // Not written yet, or caught mid-write: the next look sees it.
        return undefined;
      }
    },
    async stop() {
      await proc.stop(5_000);
    },
  };
}

/**
 * A firmware image for the sim (its header names `hardware` and `version`, which the sim
 * reboots into), signed for component `main` and `manifestHardware`, and uploaded.
 */
export async function uploadSimFirmware(
  ingest: IngestHandle,
  key: KeyPair,
  options: { version: string; hardware: string; manifestHardware?: string[]; size?: number },
): Promise<{ firmwareId: string; sha256: string }> {
  let state = 7;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
  const image = Buffer.from(
    buildFirmwareImage(
      { hardware: options.hardware, version: options.version },
      options.size ?? 8 * 1024,
      random,
    ),
  );
  const firmwareId = await uploadFirmware(ingest, key, image, {
    name: 'th firmware',
    component: 'main',
    version: options.version,
    hardware: options.manifestHardware ?? [options.hardware],
  });
  return { firmwareId, sha256: createHash('sha256').update(image).digest('hex') };
}

export interface RolloutView {
  id: string;
  status: string;
  reason: string | null;
  finishedAt: string | null;
  devices: RolloutDevice[];
}

/** Creates a rollout through the API; returns its id. */
export async function createChildRollout(
  ingest: IngestHandle,
  body: Record<string, unknown>,
): Promise<string> {
  const res = await apiOf(ingest)('POST', '/api/v1/rollouts', body);
  if (res.status !== 201) {
    throw new Error(`rollout: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body.id as string;
}

export async function getRollout(ingest: IngestHandle, id: string): Promise<RolloutView> {
  const res = await apiOf(ingest)('GET', `/api/v1/rollouts/${id}`);
  if (res.status !== 200) throw new Error(`rollout ${id}: HTTP ${res.status}`);
  return res.body as unknown as RolloutView;
}

/** Waits until the rollout is no longer running (completed, aborted, …); its final view. */
export async function waitForRolloutEnd(
  ingest: IngestHandle,
  id: string,
  options: { timeoutMs: number; process?: ManagedProcess },
): Promise<RolloutView> {
  let last: RolloutView | undefined;
  try {
    await waitFor(
      async () => {
        last = await getRollout(ingest, id);
        return last.status !== 'running';
      },
      {
        what: `rollout ${id} to end`,
        timeoutMs: options.timeoutMs,
        intervalMs: 250,
        ...(options.process ? { process: options.process } : {}),
      },
    );
  } catch (err) {
    // Where each device got stuck is what tells a failure apart.
    const devices = last?.devices.map((d) => `${d.deviceId}: ${d.state} ${d.detail ?? ''}`);
    throw new Error(`${(err as Error).message}\ndevices: ${JSON.stringify(devices)}`);
  }
  return last!;
}

/** Points of `metric` the ingest stored for `device` with a time after `afterMs`. */
export async function readingsAfter(
  ingest: IngestHandle,
  device: string,
  metric: string,
  afterMs: number,
): Promise<{ time: string; value: unknown }[]> {
  const query = new URLSearchParams({ metric, from: String(afterMs + 1), to: 'now' });
  const res = await apiOf(ingest)('GET', `/api/v1/devices/${device}/telemetry?${query}`);
  if (res.status !== 200) {
    throw new Error(`telemetry of ${device}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body.points as { time: string; value: unknown }[];
}
