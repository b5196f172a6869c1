import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RELEASE_KEYS_FILE, ReleaseKeyStore } from './release-key-store.js';

// Real files in a temporary directory; keys are real Ed25519 and P-256 pairs.

let dir: string;
let a: KeyPair;
let b: KeyPair;
let rogue: KeyPair;

beforeAll(async () => {
  [a, b, rogue] = await Promise.all([
    generateKeyPair('Ed25519'),
    generateKeyPair('P-256'),
    generateKeyPair('Ed25519'),
  ]);
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'release-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const kids = (store: ReleaseKeyStore) => store.current().map((k) => k.x);

describe('ReleaseKeyStore', () => {
  it('trusts the enrollment keys, then each keys.release set, kept 0600 across restarts', async () => {
    const store = new ReleaseKeyStore(dir, [a.publicJwk]);
    expect(await store.load()).toEqual({ damaged: false });
    expect(kids(store)).toEqual([a.publicJwk.x]);
    await store.replace([b.publicJwk], 1_700_000_000_000);
    expect(kids(store)).toEqual([b.publicJwk.x]);
    expect((await stat(join(dir, RELEASE_KEYS_FILE))).mode & 0o777).toBe(0o600);
    const again = new ReleaseKeyStore(dir, [a.publicJwk]);
    await again.load();
    expect(kids(again)).toEqual([b.publicJwk.x]);
  });

  it('leaves out what is not a public key', async () => {
    const store = new ReleaseKeyStore(dir, []);
    await store.load();
    await store.replace([{ kty: 'oct', k: 'secret' }, 'x', a.publicJwk, { ...a.privateJwk }], 0);
    expect(kids(store)).toEqual([a.publicJwk.x]);
    expect(JSON.stringify(JSON.parse(await readFile(store.path, 'utf8')))).not.toContain('"d"');
  });

  it('reports a damaged file and falls back to the enrollment keys', async () => {
    await writeFile(join(dir, RELEASE_KEYS_FILE), '{"v":1,"keys":', { mode: 0o600 });
    const store = new ReleaseKeyStore(dir, [a.publicJwk]);
    expect(await store.load()).toEqual({ damaged: true });
    expect(kids(store)).toEqual([a.publicJwk.x]);
  });

  describe('with pins', () => {
    it('never trusts a key the service adds that is not pinned', async () => {
      const store = new ReleaseKeyStore(dir, [a.publicJwk], [a.kid, b.kid]);
      await store.load();
      expect(await store.replace([a.publicJwk, rogue.publicJwk, b.publicJwk], 0)).toEqual({
        trusted: 2,
        unpinned: 1,
      });
      expect(kids(store)).toEqual([a.publicJwk.x, b.publicJwk.x]);
    });

    it('lets the service retire a pinned key', async () => {
      const store = new ReleaseKeyStore(dir, [a.publicJwk, b.publicJwk], [a.kid, b.kid]);
      await store.load();
      await store.replace([b.publicJwk], 0);
      expect(kids(store)).toEqual([b.publicJwk.x]);
    });

    it('applies the pins to the enrollment keys and to a set already on disk', async () => {
      const unpinned = new ReleaseKeyStore(dir, []);
      await unpinned.load();
      await unpinned.replace([rogue.publicJwk, a.publicJwk], 0);
      const enrolledOnly = new ReleaseKeyStore(
        await mkdtemp(join(tmpdir(), 'release-keys-')),
        [rogue.publicJwk, a.publicJwk],
        [a.kid],
      );
      expect(kids(enrolledOnly)).toEqual([]);
      await enrolledOnly.load();
      expect(kids(enrolledOnly)).toEqual([a.publicJwk.x]);
      const fromDisk = new ReleaseKeyStore(dir, [], [a.kid]);
      await fromDisk.load();
      expect(kids(fromDisk)).toEqual([a.publicJwk.x]);
    });
  });
});
