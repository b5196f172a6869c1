import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandOf } from '@outpost/protocol/commands';
import type { Manifest } from '@outpost/protocol/ota';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { signManifest } from '@outpost/signing/manifest';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Installer, InstallOutcome, InstallRequest } from './installer.js';
import { type OtaRecord, OtaStateStore } from './ota-state-store.js';
import { OtaUpdater } from './ota-updater.js';
import { ReleaseKeyStore } from './release-key-store.js';

// Real parts: manifests signed with real release keys, the state file, release-keys.json and
// the staging dir on disk. Fake: the ingest (a `fetch` serving the image, a `publish`
// recording events) and the installer (answers as told, records its requests).

const SERVER = 'http://ingest.test:8080';
const GW = 'gw-1';
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const IMAGE = randomBytes(5000);
const SHA = createHash('sha256').update(IMAGE).digest('hex');

async function manifestOf(key: KeyPair, over: Partial<Manifest> = {}): Promise<string> {
  return signManifest(key.privateJwk, {
    name: 'outpost-agent',
    component: 'agent',
    version: '1.1.0',
    hardware: ['hw-a'],
    size: IMAGE.length,
    sha256: SHA,
    createdAt: 1_760_000_000,
    ...over,
  } satisfies Manifest);
}

function offer(
  manifest: string,
  over: Partial<CommandOf<'ota.offer'>> = {},
): CommandOf<'ota.offer'> {
  return {
    v: 1,
    id: randomUUID(),
    exp: 2_000_000_000,
    device: GW,
    type: 'ota.offer',
    rolloutId: 'r1',
    component: 'agent',
    manifest,
    url: `${SERVER}/api/v1/firmware/f1/artifact`,
    ...over,
  };
}

class FakeInstaller implements Installer {
  readonly requests: InstallRequest[] = [];
  /** The gateway, and children a test adds. */
  readonly devices = new Set([GW]);
  outcome: (r: InstallRequest) => Promise<InstallOutcome> = async (r) => {
    r.report({ state: 'installing' });
    r.report({ state: 'rebooting' });
    r.report({ state: 'trial' });
    return { state: 'succeeded', version: r.manifest.version };
  };
  handles(deviceId: string, component: string): boolean {
    return this.devices.has(deviceId) && component === 'agent';
  }
  async installed() {
    return { hardware: 'hw-a', version: '1.0.0' };
  }
  install(request: InstallRequest): Promise<InstallOutcome> {
    this.requests.push(request);
    return this.outcome(request);
  }
}

async function setup(options: { trusted?: KeyPair[]; publishFails?: () => boolean } = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ota-updater-spec-'));
  dirs.push(dataDir);
  const key = await generateKeyPair();
  const trusted = options.trusted ?? [key];
  const events: Record<string, unknown>[] = [];
  const fetches: string[] = [];
  const installer = new FakeInstaller();
  const state = new OtaStateStore(dataDir);
  const make = () =>
    new OtaUpdater({
      dataDir,
      server: SERVER,
      installers: [installer],
      releaseKeys: new ReleaseKeyStore(
        dataDir,
        trusted.map((k) => k.publicJwk),
      ),
      state,
      publish: async (deviceId, event) => {
        if (options.publishFails?.()) throw new Error('not connected');
        events.push({ deviceId, ...event });
      },
      download: {
        token: async () => 'jwt',
        fetch: async (url) => {
          fetches.push(url);
          return new Response(IMAGE, { status: 200 });
        },
        random: () => 0.5,
        monotonic: () => 0,
        now: () => 0,
        sleep: async () => undefined,
        backoff: { initialMs: 1, maxMs: 1 },
        maxAttempts: 2,
        maxRetryAfterMs: 1,
        idleTimeoutMs: 5000,
      },
      progressEveryMs: 1000,
      now: () => 1_760_000_000_000,
      logger: pino({ level: 'silent' }),
    });
  return { dataDir, key, events, fetches, installer, state, make };
}

const results = (events: Record<string, unknown>[]) =>
  events.filter((e) => e.type === 'ota.result');
const steps = (events: Record<string, unknown>[]) =>
  events.filter((e) => e.type === 'ota.progress').map((e) => e.state);

async function settle(updater: OtaUpdater, events: Record<string, unknown>[], n = 1) {
  for (let i = 0; i < 200 && results(events).length < n; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await updater.stop();
}

describe('OtaUpdater', () => {
  it('takes an offer through every step and reports the result, staged image removed', async () => {
    const t = await setup();
    const updater = t.make();
    await updater.start();
    await updater.offer(offer(await manifestOf(t.key)));
    await settle(updater, t.events);
    expect(steps(t.events)).toEqual([
      'offered',
      'downloading',
      'verifying',
      'installing',
      'rebooting',
      'trial',
    ]);
    expect(results(t.events)).toEqual([
      expect.objectContaining({
        deviceId: GW,
        v: 1,
        rolloutId: 'r1',
        component: 'agent',
        state: 'succeeded',
        version: '1.1.0',
      }),
    ]);
    expect(t.installer.requests[0]!.artifactPath).toBe(
      join(t.dataDir, 'ota-staging', `${SHA}.img`),
    );
    expect(await readdir(join(t.dataDir, 'ota-staging'))).toEqual([]);
    const saved = JSON.parse(await readFile(join(t.dataDir, 'ota-state.json'), 'utf8'));
    expect(saved.records).toEqual([
      expect.objectContaining({ rolloutId: 'r1', state: 'succeeded', reported: true }),
    ]);
    expect((await stat(join(t.dataDir, 'ota-state.json'))).mode & 0o777).toBe(0o600);
  });

  it.each([
    ['a manifest by an untrusted key', 'untrusted', {}, {}, 'release_key_unknown'],
    ['other hardware', 'trusted', { hardware: ['hw-b'] }, {}, 'hardware_mismatch'],
    ['an older version', 'trusted', { version: '0.9.0' }, {}, 'downgrade'],
    [
      'minVersion above the running one',
      'trusted',
      { minVersion: '1.0.5' },
      {},
      'below_min_version',
    ],
    [
      'a manifest for another component',
      'trusted',
      { component: 'radio' },
      {},
      'component_mismatch',
    ],
    [
      'an artifact on another origin',
      'trusted',
      {},
      { url: 'http://evil.test/a' },
      'url_foreign_origin',
    ],
    [
      'a component no installer serves',
      'trusted',
      { component: 'radio' },
      { component: 'radio' },
      'component_unsupported',
    ],
  ] as const)(
    'refuses %s before downloading anything',
    async (_what, signer, fields, over, reason) => {
      const t = await setup();
      const key = signer === 'trusted' ? t.key : await generateKeyPair();
      const updater = t.make();
      await updater.start();
      await updater.offer(offer(await manifestOf(key, fields as Partial<Manifest>), over));
      await settle(updater, t.events);
      expect(results(t.events)).toEqual([expect.objectContaining({ state: 'failed', reason })]);
      expect(t.fetches).toEqual([]);
      expect(t.installer.requests).toEqual([]);
    },
  );

  it('reports the same version as succeeded at once', async () => {
    const t = await setup();
    const updater = t.make();
    await updater.start();
    await updater.offer(offer(await manifestOf(t.key, { version: '1.0.0' })));
    await settle(updater, t.events);
    expect(results(t.events)).toEqual([
      expect.objectContaining({ state: 'succeeded', version: '1.0.0' }),
    ]);
    expect(t.fetches).toEqual([]);
  });

  it('ignores an offer repeated while it runs, and says the result again once done', async () => {
    const t = await setup();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    t.installer.outcome = async (r) => {
      await gate;
      return { state: 'succeeded', version: r.manifest.version };
    };
    const updater = t.make();
    await updater.start();
    const jws = await manifestOf(t.key);
    await updater.offer(offer(jws));
    await updater.offer(offer(jws));
    release();
    for (let i = 0; i < 200 && results(t.events).length < 1; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await updater.offer(offer(jws));
    await settle(updater, t.events, 2);
    expect(t.fetches).toHaveLength(1);
    expect(t.installer.requests).toHaveLength(1);
    expect(results(t.events).map((e) => e.state)).toEqual(['succeeded', 'succeeded']);
  });

  it('refuses an offer of another rollout while one runs (busy)', async () => {
    const t = await setup();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    t.installer.outcome = async (r) => {
      await gate;
      return { state: 'succeeded', version: r.manifest.version };
    };
    const updater = t.make();
    await updater.start();
    const jws = await manifestOf(t.key);
    await updater.offer(offer(jws));
    for (let i = 0; i < 200 && t.installer.requests.length < 1; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await updater.offer(offer(jws, { rolloutId: 'r2' }));
    release();
    await settle(updater, t.events, 2);
    expect(results(t.events)).toEqual([
      expect.objectContaining({ rolloutId: 'r2', state: 'failed', reason: 'busy' }),
      expect.objectContaining({ rolloutId: 'r1', state: 'succeeded' }),
    ]);
  });

  it.each([
    ['downloading', 1, 1],
    ['verifying', 1, 1],
    ['installing', 0, 1],
    ['rebooting', 0, 1],
    ['trial', 0, 1],
    ['succeeded', 0, 0],
  ] as const)(
    'after a restart in %s: fetches %i, installs %i',
    async (state, fetches, installs) => {
      const t = await setup();
      const record: OtaRecord = {
        deviceId: GW,
        component: 'agent',
        rolloutId: 'r1',
        state,
        manifest: await manifestOf(t.key),
        url: `${SERVER}/api/v1/firmware/f1/artifact`,
        received: 0,
        reported: false,
        updatedAt: 0,
      };
      await t.state.put(record);
      const updater = t.make();
      await updater.start();
      updater.sessionUp();
      await settle(updater, t.events);
      expect(t.fetches).toHaveLength(fetches);
      expect(t.installer.requests).toHaveLength(installs);
      expect(results(t.events)).toEqual([
        expect.objectContaining({ rolloutId: 'r1', state: 'succeeded' }),
      ]);
    },
  );

  it('finishes an install under way though the key that signed it is no longer trusted', async () => {
    const t = await setup({ trusted: [await generateKeyPair()] });
    const signer = await generateKeyPair();
    await t.state.put({
      deviceId: GW,
      component: 'agent',
      rolloutId: 'r1',
      state: 'trial',
      manifest: await manifestOf(signer),
      url: `${SERVER}/api/v1/firmware/f1/artifact`,
      received: IMAGE.length,
      reported: false,
      updatedAt: 0,
    });
    const updater = t.make();
    await updater.start();
    await settle(updater, t.events);
    expect(t.installer.requests).toHaveLength(1);
    expect(results(t.events)).toEqual([expect.objectContaining({ state: 'succeeded' })]);
  });

  it('reports a result again when the session comes back, until acknowledged', async () => {
    let down = true;
    const t = await setup({ publishFails: () => down });
    const updater = t.make();
    await updater.start();
    await updater.offer(offer(await manifestOf(t.key, { version: '1.0.0' })));
    for (let i = 0; i < 50; i++) await new Promise((r) => setTimeout(r, 2));
    expect(t.state.get(GW, 'agent')).toMatchObject({ state: 'succeeded', reported: false });
    down = false;
    updater.sessionUp();
    await settle(updater, t.events);
    expect(results(t.events)).toHaveLength(1);
    expect(t.state.get(GW, 'agent')).toMatchObject({ reported: true });
  });

  it('children offered the same image at once share one download and all install it', async () => {
    const t = await setup();
    const kids = ['kid-1', 'kid-2', 'kid-3'];
    for (const kid of kids) t.installer.devices.add(kid);
    const flashed: Buffer[] = [];
    t.installer.outcome = async (r) => {
      // Each flash takes a while, so the others' downloads and ends overlap it.
      await new Promise((resolve) => setTimeout(resolve, 20));
      flashed.push(await readFile(r.artifactPath));
      return { state: 'succeeded', version: r.manifest.version };
    };
    const updater = t.make();
    await updater.start();
    const manifest = await manifestOf(t.key);
    await Promise.all(kids.map((kid) => updater.offer(offer(manifest, { device: kid }))));
    await settle(updater, t.events, kids.length);
    expect(results(t.events).map((e) => [e.deviceId, e.state])).toEqual(
      expect.arrayContaining(kids.map((kid) => [kid, 'succeeded'])),
    );
    expect(flashed).toHaveLength(kids.length);
    for (const image of flashed) expect(image.equals(IMAGE)).toBe(true);
    expect(t.fetches).toHaveLength(1);
    expect(await readdir(join(t.dataDir, 'ota-staging'))).toEqual([]);
  });

  it('keys.release replaces the trusted keys and keeps them (0600) across restarts', async () => {
    const t = await setup();
    const next = await generateKeyPair();
    const first = t.make();
    await first.start();
    await first.keysRelease({
      v: 1,
      id: randomUUID(),
      exp: 2_000_000_000,
      device: GW,
      type: 'keys.release',
      keys: [next.publicJwk],
    });
    await first.stop();
    expect((await stat(join(t.dataDir, 'release-keys.json'))).mode & 0o777).toBe(0o600);
    const second = t.make();
    await second.start();
    await second.offer(offer(await manifestOf(t.key), { rolloutId: 'old-key' }));
    await second.offer(
      offer(await manifestOf(next, { version: '1.2.0' }), { rolloutId: 'new-key' }),
    );
    await settle(second, t.events, 2);
    expect(results(t.events)).toEqual([
      expect.objectContaining({ rolloutId: 'old-key', reason: 'release_key_unknown' }),
      expect.objectContaining({ rolloutId: 'new-key', state: 'succeeded' }),
    ]);
  });
});
