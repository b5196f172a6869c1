import { execFileSync } from 'node:child_process';
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { BundleInvalid, safeEntryPath, safeLinkTarget, unpackTarGz } from './tar-unpack.js';

// Real parts: archives built here byte by byte (to say what `tar` would refuse to write) or
// by GNU tar, unpacked into temporary directories.

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'tar-unpack-spec-'));
  dirs.push(d);
  return d;
};

interface Entry {
  name: string;
  type?: string;
  body?: string;
  link?: string;
  mode?: number;
}

function header(e: Entry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name.slice(0, 100), 0, 'utf8');
  h.write(`${(e.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  h.write('00000000000\0', 136, 'ascii');
  h.write(e.type ?? '0', 156, 'ascii');
  if (e.link) h.write(e.link, 157, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

function tarGz(entries: readonly Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    parts.push(header(e, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(parts));
}

const limits = { maxBytes: 1024 * 1024, maxEntries: 100 };

async function unpack(entries: readonly Entry[], over = limits) {
  const dir = await tempDir();
  const archive = join(dir, 'bundle.tar.gz');
  await writeFile(archive, tarGz(entries));
  const dest = join(dir, 'out');
  const result = await unpackTarGz(archive, dest, over).then(
    () => undefined,
    (err: unknown) => err,
  );
  return { dir, dest, result };
}

describe('unpackTarGz', () => {
  it('unpacks files, directories and an inner link, without setuid bits', async () => {
    const { dest, result } = await unpack([
      { name: 'apps/', type: '5' },
      { name: 'apps/edge-agent/dist/main.js', body: 'console.log(1)\n', mode: 0o4755 },
      { name: 'packages/protocol/package.json', body: '{}' },
      { name: 'node_modules/@outpost/protocol', type: '2', link: '../../packages/protocol' },
    ]);
    expect(result).toBeUndefined();
    expect(await readFile(join(dest, 'apps/edge-agent/dist/main.js'), 'utf8')).toBe(
      'console.log(1)\n',
    );
    expect((await lstat(join(dest, 'apps/edge-agent/dist/main.js'))).mode & 0o7777).toBe(0o755);
    expect(await readlink(join(dest, 'node_modules/@outpost/protocol'))).toBe(
      '../../packages/protocol',
    );
  });

  it.each([
    ['a parent segment', [{ name: '../escape.txt', body: 'x' }]],
    ['a parent segment deeper down', [{ name: 'a/../../escape.txt', body: 'x' }]],
    ['an absolute name', [{ name: '/tmp/escape.txt', body: 'x' }]],
    ['a link out of the bundle', [{ name: 'link', type: '2', link: '../../etc' }]],
    ['an absolute link', [{ name: 'link', type: '2', link: '/etc' }]],
    [
      'a file beneath a link',
      [
        { name: 'inner', type: '5' },
        { name: 'link', type: '2', link: 'inner' },
        { name: 'link/x', body: 'x' },
      ],
    ],
    [
      'a hard link',
      [
        { name: 'a', body: 'x' },
        { name: 'b', type: '1', link: 'a' },
      ],
    ],
    ['a device', [{ name: 'dev', type: '3' }]],
    ['a FIFO', [{ name: 'fifo', type: '6' }]],
    [
      'the same file twice',
      [
        { name: 'a', body: 'x' },
        { name: 'a', body: 'y' },
      ],
    ],
  ] as const)('refuses %s and writes nothing outside', async (_what, entries) => {
    const { dir, result } = await unpack(entries);
    expect(result).toBeInstanceOf(BundleInvalid);
    expect((result as BundleInvalid).code).toBe('bundle_invalid');
    expect((await readdir(dir)).sort()).toEqual(['bundle.tar.gz', 'out']);
  });

  it('refuses an archive that unpacks to more than the bound', async () => {
    const { result } = await unpack([{ name: 'big', body: 'x'.repeat(5000) }], {
      maxBytes: 4096,
      maxEntries: 10,
    });
    expect(String(result)).toMatch(/more than 4096 bytes/);
  });

  it('refuses more entries than the bound', async () => {
    const { result } = await unpack(
      Array.from({ length: 5 }, (_, i) => ({ name: `f${i}`, body: 'x' })),
      { maxBytes: 4096, maxEntries: 4 },
    );
    expect(String(result)).toMatch(/more than 4 entries/);
  });

  it('refuses a damaged header and a truncated archive', async () => {
    const dir = await tempDir();
    const good = tarGz([{ name: 'a', body: 'hello' }]);
    const raw = Buffer.from(gunzipSync(good));
    raw[10]! ^= 0xff;
    await writeFile(join(dir, 'bad.tar.gz'), gzipSync(raw));
    await expect(unpackTarGz(join(dir, 'bad.tar.gz'), join(dir, 'o1'), limits)).rejects.toThrow(
      /invalid tar header/i,
    );
    await writeFile(join(dir, 'short.tar.gz'), gzipSync(raw.subarray(0, 600)));
    await expect(unpackTarGz(join(dir, 'short.tar.gz'), join(dir, 'o2'), limits)).rejects.toThrow(
      BundleInvalid,
    );
  });

  it('reads what GNU tar writes, long names included', async () => {
    const dir = await tempDir();
    const src = join(dir, 'src');
    const deep = join(src, 'node_modules', 'a'.repeat(60), 'b'.repeat(60), 'c'.repeat(40));
    await mkdir(deep, { recursive: true });
    await writeFile(join(deep, 'index.js'), 'export {};\n');
    await writeFile(join(src, 'top.txt'), 'top\n');
    for (const format of ['gnu', 'pax', 'ustar']) {
      const archive = join(dir, `${format}.tar.gz`);
      try {
        execFileSync('tar', [`--format=${format}`, '-czf', archive, '-C', src, '.'], {
          stdio: 'ignore',
        });
      } catch {
        // ustar cannot hold every long name: that archive is not made
        continue;
      }
      const dest = join(dir, `out-${format}`);
      await unpackTarGz(archive, dest, limits);
      expect(await readFile(join(dest, 'top.txt'), 'utf8')).toBe('top\n');
      const rel = deep.slice(src.length + 1);
      expect(await readFile(join(dest, rel, 'index.js'), 'utf8')).toBe('export {};\n');
    }
  });
});

describe('safeEntryPath and safeLinkTarget', () => {
  const root = '/opt/outpost-agent/versions/.unpack-x';
  it.each([
    ['apps/edge-agent/dist/main.js', `${root}/apps/edge-agent/dist/main.js`],
    ['./apps/x', `${root}/apps/x`],
    ['dir/', `${root}/dir`],
    ['.', root],
  ])('%j → %s', (name, path) => {
    expect(safeEntryPath(root, name)).toBe(path);
  });

  it.each(['../x', 'a/../../x', '/etc/passwd', 'a\\..\\x', 'a//b', 'a/\0b', '..'])(
    'refuses %j',
    (name) => {
      expect(() => safeEntryPath(root, name)).toThrow(BundleInvalid);
    },
  );

  it.each([
    ['node_modules/@outpost/p', '../../packages/p', true],
    ['a/link', '../b', true],
    ['link', '../x', false],
    ['a/link', '../../x', false],
    ['link', '/etc', false],
  ])('link %s → %s allowed: %s', (entry, target, ok) => {
    const check = () => safeLinkTarget(root, join(root, entry), target);
    if (ok) expect(check).not.toThrow();
    else expect(check).toThrow(BundleInvalid);
  });
});
