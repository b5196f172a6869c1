import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_OTA_RECORDS, type OtaRecord, OtaStateStore } from './ota-state-store.js';

// Real parts: the state file in a temporary directory.

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'ota-state-spec-'));
  dirs.push(d);
  return d;
};

const JWS = 'eyJhbGciOiJFZERTQSJ9.eyJ2IjoxfQ.c2ln';
const record = (over: Partial<OtaRecord> = {}): OtaRecord => ({
  deviceId: 'gw-1',
  component: 'agent',
  rolloutId: 'r1',
  state: 'downloading',
  manifest: JWS,
  url: 'http://ingest.test/a',
  received: 10,
  reported: false,
  updatedAt: 1,
  ...over,
});

describe('OtaStateStore', () => {
  it('keeps every step on disk (0600, no temporary files left) and reads it back', async () => {
    const dir = await tempDir();
    const store = new OtaStateStore(dir);
    await store.put(record());
    await store.put(record({ state: 'verifying' }));
    await store.put(record({ deviceId: 'child-1', component: 'main', state: 'installing' }));
    expect((await stat(store.path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['ota-state.json']);
    const again = new OtaStateStore(dir);
    expect(await again.load()).toEqual({ damaged: false });
    expect(again.get('gw-1', 'agent')).toMatchObject({ state: 'verifying', received: 10 });
    expect(again.get('child-1', 'main')).toMatchObject({ state: 'installing' });
  });

  it.each([
    ['not JSON', '{"v":1,"rec'],
    ['another version', '{"v":2,"records":[]}'],
    ['a record with a bad state', JSON.stringify({ v: 1, records: [{ ...record(), state: 'x' }] })],
    [
      'a device id that is a path',
      JSON.stringify({ v: 1, records: [record({ deviceId: '../x' })] }),
    ],
  ])('treats %s as damaged and starts empty', async (_what, text) => {
    const dir = await tempDir();
    await writeFile(join(dir, 'ota-state.json'), text);
    const store = new OtaStateStore(dir);
    expect(await store.load()).toEqual({ damaged: true });
    expect(store.all()).toEqual([]);
  });

  it('drops the oldest finished and reported records beyond its bound, never unfinished ones', async () => {
    const dir = await tempDir();
    const store = new OtaStateStore(dir);
    await store.put(record({ deviceId: 'busy', state: 'trial', updatedAt: 0 }));
    for (let i = 0; i < MAX_OTA_RECORDS + 5; i++) {
      await store.put(
        record({ deviceId: `d-${i}`, state: 'succeeded', reported: true, updatedAt: 10 + i }),
      );
    }
    expect(store.all()).toHaveLength(MAX_OTA_RECORDS);
    expect(store.get('busy', 'agent')).toBeDefined();
    expect(store.get('d-0', 'agent')).toBeUndefined();
    const saved = JSON.parse(await readFile(store.path, 'utf8'));
    expect(saved.records).toHaveLength(MAX_OTA_RECORDS);
  });
});
