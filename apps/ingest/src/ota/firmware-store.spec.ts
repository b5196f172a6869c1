import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open, readFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ArtifactDamaged, FirmwareStore } from './firmware-store.js';

// Real file system in a temporary directory; nothing mocked.
const root = mkdtempSync(join(tmpdir(), 'outpost-firmware-'));
let n = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function store(ttlMs = 60_000) {
  const s = new FirmwareStore(join(root, `fw-${++n}`), ttlMs);
  await s.init();
  return s;
}

function artifact(size = 300_000) {
  const bytes = randomBytes(size);
  return { bytes, size, sha256: createHash('sha256').update(bytes).digest('hex') };
}

async function* chunks(bytes: Buffer, size = 16_384) {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

describe('FirmwareStore', () => {
  it('stores an artifact under its sha256 only, leaving nothing half written', async () => {
    const s = await store();
    const a = artifact();
    await s.write(chunks(a.bytes), a);
    expect(readdirSync(s.dir).sort()).toEqual([a.sha256, 'incoming']);
    expect(readdirSync(join(s.dir, 'incoming'))).toEqual([]);
    expect((await readFile(s.pathOf(a.sha256))).equals(a.bytes)).toBe(true);
    await s.verify(a);
  });

  it('refuses more bytes, fewer bytes or other bytes than the manifest names', async () => {
    const s = await store();
    const a = artifact(50_000);
    const other = artifact(50_000);
    await expect(
      s.write(chunks(Buffer.concat([a.bytes, Buffer.from('x')])), a),
    ).rejects.toMatchObject({ code: 'artifact_size_mismatch' });
    await expect(s.write(chunks(a.bytes.subarray(1)), a)).rejects.toMatchObject({
      code: 'artifact_size_mismatch',
      details: { received: 49_999 },
    });
    await expect(s.write(chunks(other.bytes), a)).rejects.toMatchObject({
      code: 'artifact_sha256_mismatch',
      details: { expected: a.sha256, received: other.sha256 },
    });
    expect(readdirSync(s.dir)).toEqual(['incoming']);
    expect(readdirSync(join(s.dir, 'incoming'))).toEqual([]);
  });

  it('stops reading an oversized upload at the first chunk past the size', async () => {
    const s = await store();
    const a = artifact(1000);
    let pulled = 0;
    async function* endless() {
      for (;;) {
        pulled++;
        yield Buffer.alloc(600);
      }
    }
    await expect(s.write(endless(), a)).rejects.toMatchObject({ code: 'artifact_size_mismatch' });
    expect(pulled).toBe(2);
  });

  it('refuses to serve an artifact changed on disk after it was verified', async () => {
    const s = await store();
    const a = artifact();
    await s.write(chunks(a.bytes), a);
    await s.verify(a);
    // Same size, one byte different: only the digest can tell.
    const file = await open(s.pathOf(a.sha256), 'r+');
    await file.write(Buffer.from([a.bytes[1000]! ^ 0xff]), 0, 1, 1000);
    await file.close();
    await expect(s.verify(a)).rejects.toEqual(new ArtifactDamaged('sha256'));
    await expect(s.read(a, 0, 10)).rejects.toBeInstanceOf(ArtifactDamaged);
  });

  it('refuses a truncated or missing artifact', async () => {
    const s = await store();
    const a = artifact();
    await s.write(chunks(a.bytes), a);
    await truncate(s.pathOf(a.sha256), 1000);
    await expect(s.verify(a)).rejects.toEqual(new ArtifactDamaged('size'));
    rmSync(s.pathOf(a.sha256));
    await expect(s.verify(a)).rejects.toEqual(new ArtifactDamaged('missing'));
  });

  it('is repaired by storing the same artifact again', async () => {
    const s = await store(0);
    const a = artifact();
    await s.write(chunks(a.bytes), a);
    writeFileSync(s.pathOf(a.sha256), randomBytes(a.size));
    await expect(s.verify(a)).rejects.toBeInstanceOf(ArtifactDamaged);
    await s.write(chunks(a.bytes), a);
    await s.verify(a);
  });

  it('serves byte ranges of a verified artifact', async () => {
    const s = await store();
    const a = artifact();
    await s.write(chunks(a.bytes), a);
    const parts: Buffer[] = [];
    for await (const chunk of await s.read(a, 100, 199)) parts.push(chunk as Buffer);
    expect(Buffer.concat(parts).equals(a.bytes.subarray(100, 200))).toBe(true);
  });

  it('makes paths only from sha256 digests, never from names', async () => {
    const s = await store();
    expect(() => s.pathOf('../../etc/passwd')).toThrow('not a sha256 digest');
    expect(() => s.pathOf('AB'.repeat(32))).toThrow('not a sha256 digest');
    expect(s.pathOf('ab'.repeat(32))).toBe(join(s.dir, 'ab'.repeat(32)));
  });

  it('removes uploads a crash left in incoming/ when it starts', async () => {
    const s = await store();
    writeFileSync(join(s.dir, 'incoming', 'dead.part'), 'half');
    await new FirmwareStore(s.dir, 0).init();
    expect(readdirSync(join(s.dir, 'incoming'))).toEqual([]);
  });
});
