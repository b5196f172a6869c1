import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { buildFirmwareImage } from '@outpost/firmware-sim/firmware-image';
import type { Manifest } from '@outpost/protocol/ota';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InstallOutcome, InstallStep } from '../src/ota/installer.js';
import { childDeviceIds, SerialChildInstaller } from '../src/ota/serial-child-installer.js';
import { serialFlashConfigSchema } from '../src/ota/serial-flash.js';
import { SerialSource } from '../src/sources/serial-source.js';
import type { PortStatus } from '../src/sources/source.js';
import { serialSourceConfigSchema, sourcesConfigSchema } from '../src/sources/source-config.js';

// Real parts: socat pty pairs (test-kit), the agent's SerialSource (serialport with the
// hangup-aware binding, the outpost-line parser), the built `outpost-sim serial-device`
// (firmware-sim's bootloader: BEGIN/CHUNK/END, resume, sha256 check, reboot, revert) as a
// process, images built by firmware-sim's firmware-image.ts. The installer is driven
// directly, as the OTA updater would after verifying and staging an offer.

const SIM_MAIN = join(
  dirname(createRequire(import.meta.url).resolve('@outpost/firmware-sim/package.json')),
  'dist',
  'main.js',
);
const DEVICE = 'boiler-7';

let work: WorkDir;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  work = await makeWorkDir('serial-child-flash');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

afterAll(async () => {
  await work.cleanup();
});

interface SimStats {
  version: string;
  /** Per metric: values in readings the sim wrote. */
  sent: Record<string, number>;
  firmware: { begins: number; chunksOk: number; errors: number; updates: number; reverts: number };
}

interface Rig {
  pair: PtyPairHandle;
  source: SerialSource;
  installer: SerialChildInstaller;
  sim: ManagedProcess;
  readings: () => number;
  /** Values of metric `t` received: one per reading line. */
  readingsOfT: () => number;
  status: () => PortStatus;
  stats: () => Promise<SimStats>;
}

/**
 * A source on the app end of a new pty pair, then `outpost-sim serial-device` (th-v2,
 * 1.0.0, 20 readings/s) on the device end with `simFlags`, and an installer for the port.
 */
async function rig(
  name: string,
  simFlags: string[],
  flash: Record<string, unknown> = {},
  port: Record<string, unknown> = {},
) {
  const pair = await ptyPair({ workDir: await work.mkdir(`pty-${name}`) });
  cleanups.push(() => pair.stop());
  let readings = 0;
  let readingsOfT = 0;
  const source = new SerialSource(
    serialSourceConfigSchema.parse({
      port: pair.appPath,
      device: DEVICE,
      identifyEvery: '300ms',
      reconnect: { initial: '100ms', max: '1s' },
      ...port,
    }),
    {
      sink: (rs) => {
        readings += rs.length;
        readingsOfT += rs.filter((reading) => reading.metric === 't').length;
      },
      clock: { now: () => Date.now() },
    },
  );
  cleanups.push(() => source.stop());
  await source.start();
  const statsFile = work.join(`${name}-stats.json`);
  const sim = ManagedProcess.start({
    name: `outpost-sim-${name}`,
    command: process.execPath,
    args: [
      SIM_MAIN,
      'serial-device',
      '--port',
      pair.devicePath,
      '--rate',
      '20',
      '--metrics',
      't=sine:20:5:60',
      'h=const:40',
      '--hardware',
      'th-v2',
      '--serial',
      'BR0001',
      '--firmware',
      '1.0.0',
      '--reboot-ms',
      '300',
      '--stats-file',
      statsFile,
      '--stats-interval',
      '200ms',
      ...simFlags,
    ],
    logPath: work.join(`${name}.log`),
    stopTimeoutMs: 5_000,
  });
  cleanups.push(() => sim.stop());
  const installer = new SerialChildInstaller({
    sources: [source],
    config: serialFlashConfigSchema.parse({
      ackTimeout: '5s',
      endTimeout: '10s',
      rebootTimeout: '15s',
      identifyEvery: '1s',
      trial: '2s',
      progressEvery: '200ms',
      ...flash,
    }),
  });
  await waitFor(async () => (await installer.installed(DEVICE, 'main'))?.version === '1.0.0', {
    what: 'the device identified as 1.0.0',
    timeoutMs: 20_000,
    process: sim,
  });
  const r: Rig = {
    pair,
    source,
    installer,
    sim,
    readings: () => readings,
    readingsOfT: () => readingsOfT,
    status: () => source.status()[0]!,
    stats: async () => {
      const fleet = JSON.parse(await readFile(statsFile, 'utf8')) as {
        devices: Record<string, SimStats>;
      };
      return fleet.devices['sim-1']!;
    },
  };
  return r;
}

interface Staged {
  manifest: Manifest;
  path: string;
}

/** A th-v2 image of `version`, staged on disk with its manifest, as the OTA updater leaves it. */
async function stage(version: string, size: number, seed = 1): Promise<Staged> {
  let state = seed;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
  const image = buildFirmwareImage({ hardware: 'th-v2', version }, size, random);
  const path = work.join(`th-v2-${version}-${size}-${seed}.bin`);
  await writeFile(path, image);
  const manifest: Manifest = {
    name: 'th firmware',
    component: 'main',
    version,
    hardware: ['th-v2'],
    size,
    sha256: createHash('sha256').update(image).digest('hex'),
    createdAt: 1_700_000_000,
  };
  return { manifest, path };
}

/** Starts an install; `steps` fills as the installer reports. */
function install(r: Rig, staged: Staged, signal = new AbortController().signal) {
  const steps: InstallStep[] = [];
  const outcome: Promise<InstallOutcome> = r.installer.install({
    deviceId: DEVICE,
    component: 'main',
    manifest: staged.manifest,
    artifactPath: staged.path,
    report: (step) => steps.push(step),
    signal,
  });
  return { steps, outcome };
}

/** Bytes named by the latest `installing` report (`N of M bytes`). */
function bytesReported(steps: InstallStep[]): number {
  for (const step of [...steps].reverse()) {
    const match = /(\d+) of \d+ bytes/.exec(step.detail ?? '');
    if (step.state === 'installing' && match !== null) return Number(match[1]);
  }
  return 0;
}

describe('flashing a serial child device (firmware-sim on a socat pty)', {
  timeout: 120_000,
}, () => {
  it('maps serial sources to child device ids and serves only their main component', async () => {
    const sources = sourcesConfigSchema.parse([
      { serial: { port: '/dev/ttyUSB0', device: 'boiler-7' } },
      { mqtt: { listen: '127.0.0.1:0', allowAnonymous: true } },
      { serial: { port: '/dev/ttyUSB1', device: 'pump-2' } },
      { serial: { port: '/dev/ttyUSB2', device: 'boiler-7' } },
    ]);
    expect(childDeviceIds({ sources })).toEqual(['boiler-7', 'pump-2']);
    const r = await rig('handles', []);
    expect(r.installer.handles(DEVICE, 'main')).toBe(true);
    expect(r.installer.handles(DEVICE, 'agent')).toBe(false);
    expect(r.installer.handles('pump-2', 'main')).toBe(false);
    expect(await r.installer.installed(DEVICE, 'main')).toEqual({
      hardware: 'th-v2',
      version: '1.0.0',
    });
  });

  it('a good flash succeeds; the device comes back with the new ID and keeps reading', async () => {
    const r = await rig('good', []);
    const staged = await stage('2.0.0', 20 * 1024);
    const { steps, outcome } = install(r, staged);
    expect(await outcome).toEqual({ state: 'succeeded', version: '2.0.0' });

    const states = steps.map((s) => s.state);
    expect(states[0]).toBe('installing');
    expect(states.indexOf('rebooting')).toBeGreaterThan(0);
    expect(states.indexOf('trial')).toBeGreaterThan(states.indexOf('rebooting'));
    expect(states.at(-1)).toBe('trial');
    expect(r.source.identity).toEqual({ hardware: 'th-v2', serial: 'BR0001', version: '2.0.0' });
    expect(await r.installer.installed(DEVICE, 'main')).toEqual({
      hardware: 'th-v2',
      version: '2.0.0',
    });
    const before = r.readings();
    await waitFor(() => r.readings() > before + 10, { what: 'readings after the update' });
    expect(r.status().state).toBe('open');
    // Not a reading lost: stop the sim, and every reading it wrote, before, during and after
    // the update, reached the source (the port was opened before the sim started).
    await r.sim.stop();
    const stats = await r.stats();
    expect(stats.version).toBe('2.0.0');
    expect(stats.firmware.updates).toBe(1);
    await waitFor(() => r.readingsOfT() >= stats.sent.t!, { what: 'every reading the sim sent' });
    expect(r.readingsOfT()).toBe(stats.sent.t);
  });

  it('a reboot longer than the silent watchdog does not get the port reopened', async () => {
    // Silent for 3 s while rebooting, with a 1 s watchdog: the update holds it off.
    const r = await rig('long-reboot', ['--reboot-ms', '3000'], {}, { silentAfter: '1s' });
    const staged = await stage('2.0.0', 4 * 1024);
    // (The watchdog may have fired once already while the sim process started.)
    const { reopens } = r.status();
    const { outcome } = install(r, staged);
    expect(await outcome).toEqual({ state: 'succeeded', version: '2.0.0' });
    expect(r.status()).toMatchObject({ state: 'open', reopens });
    expect(r.source.identity?.version).toBe('2.0.0');
  });

  it('an interrupted flash (aborted) leaves 1.0.0; the next install resumes from the device offset', async () => {
    // 40 KiB in 80 chunks, each acknowledged 30 ms late: long enough to interrupt.
    const r = await rig('resume', ['--slow-ms', '30']);
    const staged = await stage('2.0.0', 40 * 1024);
    const abort = new AbortController();
    const first = install(r, staged, abort.signal);
    await waitFor(() => bytesReported(first.steps) >= 8 * 1024, {
      what: '8 KiB transferred',
      timeoutMs: 30_000,
    });
    abort.abort();
    const interrupted = await first.outcome;
    expect(interrupted).toMatchObject({ state: 'failed', version: '1.0.0' });
    expect(interrupted.state === 'failed' && interrupted.reason).toMatch(/^aborted at \d+ of/);
    expect(await r.installer.installed(DEVICE, 'main')).toMatchObject({ version: '1.0.0' });

    const second = install(r, staged);
    expect(await second.outcome).toEqual({ state: 'succeeded', version: '2.0.0' });
    const resumed = second.steps.find((s) => s.detail?.startsWith('resuming at'));
    expect(resumed?.detail).toMatch(/^resuming at \d+ of 40960 bytes$/);
    expect(Number(/resuming at (\d+)/.exec(resumed!.detail!)![1])).toBeGreaterThanOrEqual(8 * 1024);
    await waitFor(async () => (await r.stats()).firmware.updates === 1, {
      what: 'the sim counts one update',
    });
    const { firmware } = await r.stats();
    expect(firmware.begins).toBe(2);
    // Resumed, not started over: well under the 2 × 80 chunks of two full transfers.
    expect(firmware.chunksOk).toBeLessThan(80 + 10);
  });

  it('a failing health check rolls back and reports the old version', async () => {
    const r = await rig('health', ['--fail-health', '1s'], { trial: '10s' });
    const staged = await stage('2.0.0', 8 * 1024);
    const { steps, outcome } = install(r, staged);
    const result = await outcome;
    expect(result).toMatchObject({ state: 'rolled_back', version: '1.0.0' });
    expect(result.state === 'rolled_back' && result.reason).toMatch(/health check failed/);
    expect(steps.map((s) => s.state)).toContain('trial');
    await waitFor(async () => (await r.installer.installed(DEVICE, 'main'))?.version === '1.0.0', {
      what: 'the source sees 1.0.0 again',
    });
    await waitFor(async () => (await r.stats()).firmware.reverts === 1, {
      what: 'the sim counts one revert',
    });
  });

  it('a bad flash (the image check fails) ends failed with the device on its old version', async () => {
    const r = await rig('bad-flash', ['--fail-flash', 'verify']);
    const staged = await stage('2.0.0', 8 * 1024);
    const { steps, outcome } = install(r, staged);
    const result = await outcome;
    expect(result).toMatchObject({ state: 'failed', version: '1.0.0' });
    expect(result.state === 'failed' && result.reason).toMatch(/verify/);
    expect(steps.map((s) => s.state)).not.toContain('rebooting');
    expect(await r.installer.installed(DEVICE, 'main')).toMatchObject({ version: '1.0.0' });
    const before = r.readings();
    await waitFor(() => r.readings() > before + 10, { what: 'readings after the failure' });
    await waitFor(async () => (await r.stats()).firmware.errors >= 1, { what: 'sim stats' });
    expect((await r.stats()).firmware.updates).toBe(0);
    expect((await r.stats()).version).toBe('1.0.0');
  });

  it('a slow link with a chunk that fails once still completes', async () => {
    // Each ack 150 ms late, and the chunk holding byte 2048 fails its first write.
    const r = await rig(
      'slow',
      ['--slow-ms', '150', '--fail-flash', '2048', '--fail-flash-times', '1'],
      {
        ackTimeout: '4s',
      },
    );
    const staged = await stage('2.0.0', 8 * 1024);
    const { outcome } = install(r, staged);
    expect(await outcome).toEqual({ state: 'succeeded', version: '2.0.0' });
    await waitFor(async () => (await r.stats()).firmware.updates === 1, { what: 'sim stats' });
    expect((await r.stats()).firmware.errors).toBe(1);
  });

  it('an unplug during the transfer ends failed; the source recovers on replug and a new install resumes', async () => {
    const r = await rig('unplug', ['--slow-ms', '30'], { ackTimeout: '1s', maxAttempts: 3 });
    const staged = await stage('2.0.0', 40 * 1024);
    const first = install(r, staged);
    await waitFor(() => bytesReported(first.steps) >= 4 * 1024, {
      what: '4 KiB transferred',
      timeoutMs: 30_000,
    });
    await r.pair.unplug();
    const result = await first.outcome;
    expect(result).toMatchObject({ state: 'failed', version: '1.0.0' });
    expect(result.state === 'failed' && result.reason).toMatch(/no answer after 3 attempts/);
    expect(r.status().state).toBe('missing');
    expect(await r.installer.installed(DEVICE, 'main')).toBeUndefined();

    await r.pair.replug();
    const before = r.readings();
    await waitFor(() => r.status().state === 'open' && r.readings() > before + 10, {
      what: 'readings after the replug',
      timeoutMs: 20_000,
      process: r.sim,
    });
    expect(await r.installer.installed(DEVICE, 'main')).toMatchObject({ version: '1.0.0' });

    const second = install(r, staged);
    expect(await second.outcome).toEqual({ state: 'succeeded', version: '2.0.0' });
    expect(second.steps.some((s) => s.detail?.startsWith('resuming at'))).toBe(true);
  });
});
