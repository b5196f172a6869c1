import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { waitFor } from '@outpost/test-kit/process';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiOf } from './support/agent-harness.js';
import {
  buildAgent,
  createRollout,
  enrollWith,
  Feeder,
  IngestProxy,
  type LaunchedAgent,
  makeInstallRoot,
  packAgentBundle,
  type RolloutDevice,
  RolloutEvents,
  reportedAgentVersion,
  rolloutDevice,
  startLauncher,
  uploadFirmware,
  waitForResult,
} from './support/ota-harness.js';

// Real parts: the built ingest and the built agent as processes, the agent started by its
// launcher from an install root (versions/<v>, `current`) as the systemd unit does; release
// keys, firmware and rollouts through the HTTP API; bundles packed from the current build
// with other versions. An HTTP proxy in front of the ingest (its public URL) can cut or spoil
// downloads. A local sensor feeds the agent so its sources count as producing.

const GW = 'gw-ota';
const CHILD = 'meter-ota';

describe('self-update of the agent through a rollout (component agent)', () => {
  const services = useServices();
  let ingest: IngestHandle;
  let proxy: IngestProxy;
  let work: WorkDir;
  let dataDir: string;
  let root: string;
  let sensorPort: number;
  let agent: LaunchedAgent | undefined;
  let feeder: Feeder;
  let events: RolloutEvents;
  let trusted: KeyPair;
  let untrusted: KeyPair;
  let starts = 0;
  let dist: string;

  const ota = () => ({
    installRoot: root,
    hardware: 'gw-test',
    trialWindow: '15s',
    maxBoots: 2,
    download: { backoff: { initial: '200ms', max: '1s' }, progressEvery: '1s', idleTimeout: '3s' },
  });

  async function launch(): Promise<LaunchedAgent> {
    const launched = await startLauncher({
      dir: work.path,
      dataDir,
      root,
      name: `agent-${++starts}`,
      sensorPort,
      ota: ota(),
    });
    await waitFor(async () => (await fetch(launched.metricsUrl)).ok, {
      what: 'agent metrics endpoint',
      process: launched.process,
      timeoutMs: 30_000,
    });
    return launched;
  }

  async function runningVersion(): Promise<string> {
    return (await readlink(join(root, 'current'))).replace('versions/', '');
  }

  /** Uploads `bytes` as `version`, rolls it out to the gateway and waits for the result. */
  async function rollOut(
    version: string,
    bytes: Buffer,
    options: { key?: KeyPair; hardware?: string[]; name?: string } = {},
  ): Promise<{ rolloutId: string; result: RolloutDevice }> {
    const firmwareId = await uploadFirmware(ingest, options.key ?? trusted, bytes, {
      version,
      ...(options.hardware ? { hardware: options.hardware } : {}),
      ...(options.name ? { name: options.name } : {}),
    });
    const rolloutId = await createRollout(ingest, firmwareId, GW);
    const result = await waitForResult(ingest, rolloutId, GW, { timeoutMs: 150_000 });
    return { rolloutId, result };
  }

  async function expectReported(version: string): Promise<void> {
    await waitFor(async () => (await reportedAgentVersion(ingest, GW)) === version, {
      what: `the gateway reporting agent ${version}`,
      timeoutMs: 60_000,
    });
  }

  beforeAll(async () => {
    proxy = await IngestProxy.start();
    ingest = await services.add(
      startIngest({ env: { INGEST_PUBLIC_URL: proxy.url, INGEST_OTA_TICK_MS: '200' } }),
    );
    proxy.upstream = ingest.url;
    work = await makeWorkDir('ota-self-update');
    dataDir = work.join('data');
    root = work.join('opt');
    trusted = await generateKeyPair();
    untrusted = await generateKeyPair();
    for (const key of [trusted, untrusted]) {
      const res = await apiOf(ingest)('POST', '/api/v1/release-keys', { publicKey: key.publicJwk });
      expect(res.status).toBe(201);
    }
    dist = await buildAgent(work.path);
    await enrollWith(dist, ingest, dataDir, GW, [CHILD]);
    // The gateway trusts only the first key, as one enrolled before the second existed (the
    // ingest counts the set as sent, so no `keys.release` comes to change it).
    const identityPath = join(dataDir, 'identity.json');
    const identity = JSON.parse(await readFile(identityPath, 'utf8')) as {
      releaseKeys: { kid?: string }[];
    };
    expect(identity.releaseKeys).toHaveLength(2);
    identity.releaseKeys = identity.releaseKeys.filter((k) => k.kid === trusted.kid);
    await writeFile(identityPath, JSON.stringify(identity, null, 2));

    await makeInstallRoot(dist, root, '0.1.0');
    sensorPort = await freePort();
    events = await RolloutEvents.open(ingest, GW);
    agent = await launch();
    feeder = new Feeder(sensorPort, CHILD);
    await expectReported('0.1.0');
  });

  afterAll(async () => {
    events?.close();
    await feeder?.close();
    await agent?.stop();
    await proxy?.close();
    await work?.cleanup();
  });

  it('installs a good version, restarts into it and commits it after its trial', async () => {
    const { rolloutId, result } = await rollOut(
      '0.2.0',
      await packAgentBundle(dist, work.path, '0.2.0'),
    );
    expect(result).toMatchObject({ state: 'succeeded', reason: null, version: '0.2.0' });
    expect(await runningVersion()).toBe('0.2.0');
    await expectReported('0.2.0');
    const states = events.states(rolloutId);
    for (const s of ['downloading', 'verifying', 'installing', 'rebooting', 'trial', 'succeeded']) {
      expect(states, `rollout events ${states.join(' → ')}`).toContain(s);
    }
    expect(states.indexOf('rebooting')).toBeLessThan(states.indexOf('trial'));
    // The previous version stays for one more update; trial.json is gone.
    expect((await readdir(join(root, 'versions'))).sort()).toEqual(['0.1.0', '0.2.0']);
    expect(await readdir(root)).not.toContain('trial.json');
  });

  it('resumes a download cut short with a Range request', async () => {
    proxy.setMode('cut-first');
    proxy.cutAfter = 100_000;
    const before = proxy.artifactRequests.length;
    const bundle = await packAgentBundle(dist, work.path, '0.3.0', { padBytes: 1_000_000 });
    const { result } = await rollOut('0.3.0', bundle);
    proxy.setMode('pass');
    expect(result).toMatchObject({ state: 'succeeded', version: '0.3.0' });
    const requests = proxy.artifactRequests.slice(before);
    expect(requests[0]).toMatchObject({ status: 200, bytes: 100_000, range: undefined });
    // The link went dead after 100,000 bytes; the agent asks for the rest.
    expect(requests.find((r) => r.status !== 429 && r !== requests[0])).toMatchObject({
      status: 206,
      range: 'bytes=100000-',
      bytes: bundle.length - 100_000,
    });
    expect(await runningVersion()).toBe('0.3.0');
    await expectReported('0.3.0');
  });

  it('never lets a manifest name become a path', async () => {
    const name = '../../../../escape-by-name';
    const { result } = await rollOut('0.4.0', await packAgentBundle(dist, work.path, '0.4.0'), {
      name,
    });
    expect(result).toMatchObject({ state: 'succeeded', version: '0.4.0' });
    const all = await readdir(work.path, { recursive: true });
    expect(all.filter((p) => p.includes('escape-by-name'))).toEqual([]);
    const staged = await readdir(join(dataDir, 'ota-staging'));
    for (const file of staged) expect(file).toMatch(/^[0-9a-f]{64}\.(part|img)$/);
  });

  it('rolls back a version that fails its health probe and reports rolled_back', async () => {
    // No readings during the trial: the new version's sources look silent.
    feeder.feeding = false;
    try {
      const { rolloutId, result } = await rollOut(
        '0.5.0',
        await packAgentBundle(dist, work.path, '0.5.0'),
      );
      expect(result).toMatchObject({
        state: 'rolled_back',
        reason: 'health_sources_silent',
        version: '0.4.0',
      });
      expect(events.states(rolloutId)).toContain('trial');
    } finally {
      feeder.feeding = true;
    }
    expect(await runningVersion()).toBe('0.4.0');
    await expectReported('0.4.0');
    expect(await readdir(root)).not.toContain('trial.json');
  });

  it.each([
    ['a tampered artifact', '0.6.0', 'sha256_mismatch'],
    ['a manifest signed by a key the gateway does not trust', '0.6.1', 'release_key_unknown'],
    ['a manifest for other hardware', '0.6.2', 'hardware_mismatch'],
    ['an older version', '0.0.9', 'downgrade'],
  ])('refuses %s', async (what, version, reason) => {
    if (reason === 'sha256_mismatch') proxy.setMode('corrupt');
    try {
      const { result } = await rollOut(version, await packAgentBundle(dist, work.path, version), {
        ...(reason === 'release_key_unknown' ? { key: untrusted } : {}),
        ...(reason === 'hardware_mismatch' ? { hardware: ['rpi-cm4'] } : {}),
      });
      expect(result, what).toMatchObject({ state: 'failed', reason, version: '0.4.0' });
    } finally {
      proxy.setMode('pass');
    }
    expect(await runningVersion()).toBe('0.4.0');
    expect((await readdir(join(root, 'versions'))).sort()).toEqual(['0.3.0', '0.4.0']);
  });

  it('rolls back a version that cannot start (the launcher counts its boots)', async () => {
    const { result } = await rollOut(
      '0.7.0',
      await packAgentBundle(dist, work.path, '0.7.0', { breakEntry: true }),
    );
    expect(result).toMatchObject({ state: 'rolled_back', reason: 'crash_loop', version: '0.4.0' });
    expect(await runningVersion()).toBe('0.4.0');
    await expectReported('0.4.0');
  });

  it('ends in a reported result on a good version after kill -9 during the install', async () => {
    const bundle = await packAgentBundle(dist, work.path, '0.8.0', { padBytes: 24 * 1024 * 1024 });
    const firmwareId = await uploadFirmware(ingest, trusted, bundle, { version: '0.8.0' });
    const rolloutId = await createRollout(ingest, firmwareId, GW);
    await waitFor(
      async () => {
        const d = await rolloutDevice(ingest, rolloutId, GW);
        return (
          d !== undefined && ['installing', 'rebooting', 'trial', 'succeeded'].includes(d.state)
        );
      },
      { what: 'the install to start', timeoutMs: 120_000, intervalMs: 50 },
    );
    await agent!.kill9();
    agent = await launch();
    const result = await waitForResult(ingest, rolloutId, GW, { timeoutMs: 150_000 });
    const running = await runningVersion();
    expect(['succeeded', 'failed', 'rolled_back']).toContain(result.state);
    expect(result.version).toBe(running);
    expect(['0.4.0', '0.8.0']).toContain(running);
    await expectReported(running);
    await waitFor(async () => (await fetch(agent!.metricsUrl)).ok, {
      what: 'the agent running after the drill',
      timeoutMs: 30_000,
    });
  });
});
