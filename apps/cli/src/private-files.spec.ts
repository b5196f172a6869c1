import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makePrivateDir, stagePrivateFile, writePrivateFile } from './private-files.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('private files', () => {
  it('creates directories 0700 and files 0600', async () => {
    await makePrivateDir(join(dir, 'a', 'b'));
    expect((await stat(join(dir, 'a', 'b'))).mode & 0o777).toBe(0o700);
    await writePrivateFile(join(dir, 'a', 'b', 'k.json'), 'secret', { overwrite: false });
    expect((await stat(join(dir, 'a', 'b', 'k.json'))).mode & 0o777).toBe(0o600);
  });

  it('never replaces a file unless asked', async () => {
    const path = join(dir, 'k.json');
    await writeFile(path, 'old');
    await expect(writePrivateFile(path, 'new', { overwrite: false })).rejects.toMatchObject({
      code: 'file_exists',
    });
    expect(await readFile(path, 'utf8')).toBe('old');
    await writePrivateFile(path, 'new', { overwrite: true });
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual(['k.json']);
  });

  it('stages a file aside until it is committed, or discards it', async () => {
    const path = join(dir, 'device-key.json');
    const staged = await stagePrivateFile(path, 'key');
    expect((await stat(staged.path)).mode & 0o777).toBe(0o600);
    await staged.commit(false);
    expect(await readFile(path, 'utf8')).toBe('key');
    await staged.discard();
    expect(await readdir(dir)).toEqual(['device-key.json']);

    const other = await stagePrivateFile(path, 'other');
    await expect(other.commit(false)).rejects.toMatchObject({ code: 'file_exists' });
    await other.discard();
    expect(await readdir(dir)).toEqual(['device-key.json']);
    expect(await readFile(path, 'utf8')).toBe('key');
  });
});
