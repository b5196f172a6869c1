import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type DashboardBuild,
  isServicePath,
  loadDashboard,
  resolvePath,
} from './dashboard-assets.js';

let dir: string;

function writeBuild(manifest: unknown) {
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="app"></div>'.repeat(20));
  writeFileSync(join(dir, 'assets/index-abc123.js'), 'console.log("app");'.repeat(50));
  writeFileSync(join(dir, 'assets/index-def456.css'), 'body{margin:0}'.repeat(50));
  writeFileSync(join(dir, 'assets/not-in-manifest.js'), 'secret()');
  writeFileSync(join(dir, 'secret.txt'), 'not for the web');
}

const load = (): DashboardBuild => {
  const build = loadDashboard(dir);
  if (!build) throw new Error('no build');
  return build;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-dashboard-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('dashboard build', () => {
  it('is absent without a manifest or an index.html', () => {
    expect(loadDashboard(dir)).toBeUndefined();
    expect(loadDashboard(join(dir, 'nowhere'))).toBeUndefined();
  });

  it('serves exactly the files its manifest names, hashed ones as immutable', () => {
    writeBuild({
      'index.html': { file: 'assets/index-abc123.js', css: ['assets/index-def456.css'] },
    });
    const build = load();
    expect([...build.files.keys()].sort()).toEqual([
      '/assets/index-abc123.js',
      '/assets/index-def456.css',
    ]);
    const js = resolvePath(build, '/assets/index-abc123.js');
    expect(js).toMatchObject({ contentType: 'text/javascript; charset=utf-8', immutable: true });
    if (js === 'not-found') throw new Error('unreachable');
    expect(gunzipSync(js.gzip!).equals(js.body)).toBe(true);
    expect(build.index.immutable).toBe(false);
  });

  it('never maps a request path to a file outside the manifest', () => {
    writeBuild({
      'index.html': { file: 'assets/index-abc123.js', assets: ['../secret.txt', '/etc/passwd'] },
    });
    const build = load();
    expect(build.files.size).toBe(1);
    for (const path of [
      '/assets/not-in-manifest.js',
      '/assets/../secret.txt',
      '/assets/index-abc123.js.map',
      '/favicon.ico',
      '/manifest.json',
    ]) {
      expect(resolvePath(build, path), path).toBe('not-found');
    }
    // A route-like path gets the app, never the file of that name.
    expect(resolvePath(build, '/secret.txt')).toBe(build.index);
  });

  it('answers client routes with the app, and leaves service paths to the service', () => {
    writeBuild({ 'index.html': { file: 'assets/index-abc123.js' } });
    const build = load();
    for (const path of ['/', '/devices', '/devices/th-1.boiler', '/alerts', '/rollouts/r-1']) {
      expect(resolvePath(build, path), path).toBe(build.index);
    }
    for (const path of ['/api', '/api/v1/nothing', '/mqtt', '/healthz', '/readyz', '/metrics']) {
      expect(isServicePath(path), path).toBe(true);
      expect(resolvePath(build, path), path).toBe('not-found');
    }
    expect(isServicePath('/apiary')).toBe(false);
  });
});
