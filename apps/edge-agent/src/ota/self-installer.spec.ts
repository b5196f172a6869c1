import { execFileSync } from 'node:child_process';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Manifest } from '@outpost/protocol/ota';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { InstallOutcome, InstallRequest, InstallStep } from './installer.js';
import { type HealthProbe, SelfInstaller } from './self-installer.js';
import { readMarker, type TrialMarker, writeMarker } from './trial-marker.js';

// Real parts: an install root on disk (versions/, current, trial.json) and bundles made by
// GNU tar. Fake: the health probes, the restart (recorded), the clock.

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const ENTRY = 'apps/edge-agent/dist/main.js';

async function fixture(options: { withEntry?: boolean; version?: string } = {}) {
  const base = await mkdtemp(join(tmpdir(), 'self-installer-spec-'));
  dirs.push(base);
  const root = join(base, 'opt');
  await mkdir(join(root, 'versions', '1.0.0'), { recursive: true });
  await mkdir(join(root, 'versions', '0.9.0'), { recursive: true });
  await symlink('versions/1.0.0', join(root, 'current'));
  const src = join(base, 'src');
  await mkdir(join(src, 'apps/edge-agent/dist'), { recursive: true });
  if (options.withEntry !== false) await writeFile(join(src, ENTRY), 'export {};\n');
  else await writeFile(join(src, 'README'), 'no agent here\n');
  await writeFile(
    join(src, 'apps/edge-agent/package.json'),
    JSON.stringify({ version: options.version ?? '1.1.0' }),
  );
  const artifact = join(base, 'bundle.tar.gz');
  execFileSync('tar', ['-czf', artifact, '-C', src, '.']);
  return { base, root, artifact };
}

function installer(
  root: string,
  running: string,
  options: { health?: HealthProbe; now?: () => number } = {},
) {
  const restarts: string[] = [];
  const self = new SelfInstaller({
    gatewayId: 'gw-1',
    installRoot: root,
    entry: ENTRY,
    runningVersion: running,
    hardware: 'hw-a',
    trialWindowMs: 10_000,
    maxBoots: 3,
    unpack: { maxBytes: 10 * 2 ** 20, maxEntries: 1000 },
    health: options.health ?? (async () => undefined),
    restart: (reason) => restarts.push(reason),
    now: options.now ?? (() => 1_000_000),
    sleep: async () => undefined,
    logger: pino({ level: 'silent' }),
    probeEveryMs: 1,
  });
  return { self, restarts };
}

function request(artifactPath: string, version = '1.1.0') {
  const steps: InstallStep[] = [];
  const abort = new AbortController();
  const req: InstallRequest = {
    deviceId: 'gw-1',
    component: 'agent',
    manifest: { version } as Manifest,
    artifactPath,
    report: (s) => steps.push(s),
    signal: abort.signal,
  };
  return { req, steps, abort };
}

const marker = (over: Partial<TrialMarker> = {}): TrialMarker => ({
  v: 1,
  phase: 'trial',
  from: { version: '1.0.0', dir: 'versions/1.0.0' },
  to: { version: '1.1.0', dir: 'versions/1.1.0' },
  boots: 1,
  maxBoots: 3,
  trialStartedAt: null,
  ...over,
});

describe('SelfInstaller', () => {
  it('serves only the gateway’s own agent component', () => {
    const { self } = installer('/nowhere', '1.0.0');
    expect(self.handles('gw-1', 'agent')).toBe(true);
    expect(self.handles('gw-1', 'main')).toBe(false);
    expect(self.handles('child-1', 'agent')).toBe(false);
  });

  it('unpacks, switches current, writes the trial marker and asks for a restart', async () => {
    const f = await fixture();
    const { self, restarts } = installer(f.root, '1.0.0');
    const { req, steps, abort } = request(f.artifact);
    const pending = self.install(req);
    for (let i = 0; i < 100 && restarts.length === 0; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(restarts).toEqual(['update']);
    expect(steps.map((s) => s.state)).toEqual(['installing', 'rebooting']);
    expect(await readlink(join(f.root, 'current'))).toBe('versions/1.1.0');
    expect(await readFile(join(f.root, 'versions/1.1.0', ENTRY), 'utf8')).toBe('export {};\n');
    expect(await readMarker(f.root)).toMatchObject({
      phase: 'trial',
      boots: 0,
      from: { dir: 'versions/1.0.0' },
    });
    // The update goes on in the next start; this one ends with the agent's shutdown.
    abort.abort(new Error('stopping'));
    await expect(pending).rejects.toThrow('stopping');
  });

  it('refuses a bundle without the agent and leaves everything as it was', async () => {
    const f = await fixture({ withEntry: false });
    const { self, restarts } = installer(f.root, '1.0.0');
    const outcome = await self.install(request(f.artifact).req);
    expect(outcome).toEqual({ state: 'failed', reason: 'bundle_invalid', version: '1.0.0' });
    expect(restarts).toEqual([]);
    expect(await readlink(join(f.root, 'current'))).toBe('versions/1.0.0');
    expect((await readdir(join(f.root, 'versions'))).sort()).toEqual(['0.9.0', '1.0.0']);
    expect(await readMarker(f.root)).toBeUndefined();
  });

  it('refuses a bundle whose agent says it is another version', async () => {
    const f = await fixture({ version: '1.0.5' });
    const { self, restarts } = installer(f.root, '1.0.0');
    const outcome = await self.install(request(f.artifact).req);
    expect(outcome).toEqual({ state: 'failed', reason: 'bundle_invalid', version: '1.0.0' });
    expect(restarts).toEqual([]);
    expect(await readlink(join(f.root, 'current'))).toBe('versions/1.0.0');
  });

  it('fails without touching anything when there is no install root', async () => {
    const f = await fixture();
    const { self } = installer(join(f.base, 'missing'), '1.0.0');
    expect(await self.install(request(f.artifact).req)).toEqual({
      state: 'failed',
      reason: 'install_root_missing',
      version: '1.0.0',
    });
  });

  it('commits a healthy new version: marker gone, previous version kept, older removed', async () => {
    const f = await fixture();
    await mkdir(join(f.root, 'versions', '1.1.0'));
    await rm(join(f.root, 'current'));
    await symlink('versions/1.1.0', join(f.root, 'current'));
    await writeMarker(f.root, marker());
    const { self, restarts } = installer(f.root, '1.1.0');
    const { req, steps } = request(f.artifact);
    expect(await self.install(req)).toEqual<InstallOutcome>({
      state: 'succeeded',
      version: '1.1.0',
    });
    expect(steps.map((s) => s.state)).toEqual(['trial']);
    expect(restarts).toEqual([]);
    expect(await readMarker(f.root)).toBeUndefined();
    expect((await readdir(join(f.root, 'versions'))).sort()).toEqual(['1.0.0', '1.1.0']);
  });

  it.each([
    ['sources_silent', 'health_sources_silent'],
    ['cloud_unreachable', 'health_cloud_unreachable'],
  ] as const)(
    'switches back when the new version stays %s past the window',
    async (failing, reason) => {
      const f = await fixture();
      await mkdir(join(f.root, 'versions', '1.1.0'));
      await rm(join(f.root, 'current'));
      await symlink('versions/1.1.0', join(f.root, 'current'));
      await writeMarker(f.root, marker());
      let now = 1_000_000;
      const { self, restarts } = installer(f.root, '1.1.0', {
        health: async () => failing,
        now: () => (now += 1000),
      });
      const { req, abort } = request(f.artifact);
      const pending = self.install(req);
      for (let i = 0; i < 200 && restarts.length === 0; i++)
        await new Promise((r) => setTimeout(r, 5));
      expect(restarts).toEqual(['rollback']);
      expect(await readlink(join(f.root, 'current'))).toBe('versions/1.0.0');
      expect(await readMarker(f.root)).toMatchObject({ phase: 'rolled_back', reason });
      abort.abort(new Error('stopping'));
      await expect(pending).rejects.toThrow();

      // The previous version, started again, reports it and removes what it gave up.
      const old = installer(f.root, '1.0.0');
      expect(await old.self.install(request(f.artifact).req)).toEqual({
        state: 'rolled_back',
        reason,
        version: '1.0.0',
      });
      expect(await readMarker(f.root)).toBeUndefined();
      expect(await readdir(join(f.root, 'versions'))).not.toContain('1.1.0');
    },
  );

  it('reports boot_failed when the old version runs again after the new one was started', async () => {
    const f = await fixture();
    await mkdir(join(f.root, 'versions', '1.1.0'));
    await writeMarker(f.root, marker({ boots: 2 }));
    const { self } = installer(f.root, '1.0.0');
    expect(await self.install(request(f.artifact).req)).toEqual({
      state: 'rolled_back',
      reason: 'boot_failed',
      version: '1.0.0',
    });
    expect(await readlink(join(f.root, 'current'))).toBe('versions/1.0.0');
  });

  it('installs again when it was cut short before the switch (marker written, no boot yet)', async () => {
    const f = await fixture();
    await writeMarker(f.root, marker({ phase: 'switching', boots: 0 }));
    const { self, restarts } = installer(f.root, '1.0.0');
    const { req, abort } = request(f.artifact);
    const pending = self.install(req);
    for (let i = 0; i < 100 && restarts.length === 0; i++)
      await new Promise((r) => setTimeout(r, 5));
    expect(restarts).toEqual(['update']);
    expect(await readlink(join(f.root, 'current'))).toBe('versions/1.1.0');
    abort.abort(new Error('stopping'));
    await expect(pending).rejects.toThrow();
  });

  it('reports success when the trial was committed before the result went out', async () => {
    const f = await fixture();
    const { self } = installer(f.root, '1.1.0');
    expect(await self.install(request(f.artifact).req)).toEqual({
      state: 'succeeded',
      version: '1.1.0',
    });
  });
});
