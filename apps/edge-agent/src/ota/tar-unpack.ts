import { createReadStream } from 'node:fs';
import { mkdir, open, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, posix, relative, resolve, sep } from 'node:path';
import { createGunzip } from 'node:zlib';
import { AgentError } from '../errors.js';

/**
 * Unpacks an agent bundle, a `.tar.gz` as `tar -czf` makes it (POSIX ustar, with pax `x` or
 * GNU `L` records for long names), into a fresh directory. Written here on Node's zlib
 * because no tar library is a dependency of the agent. It accepts only what a bundle needs
 * and refuses the rest as `bundle_invalid`:
 *
 * - regular files and directories; symbolic links only when relative and pointing inside
 *   the bundle (npm workspaces link their packages); no hard links, devices or FIFOs;
 * - no absolute names, no `..` segments, nothing beneath a link the bundle made;
 * - at most `maxBytes` unpacked and `maxEntries` entries (a small archive can inflate to
 *   much more than its size);
 * - modes reduced to rwx bits (no setuid, setgid or sticky).
 */
export interface UnpackLimits {
  maxBytes: number;
  maxEntries: number;
}

export class BundleInvalid extends AgentError {
  constructor(detail: string) {
    super('invalid', 'bundle_invalid', `the agent bundle is not acceptable: ${detail}`);
  }
}

const BLOCK = 512;
const MAX_META_BYTES = 64 * 1024;

/** Reads exact byte counts from a stream. */
class ByteReader {
  readonly #it: AsyncIterator<Buffer>;
  #pending: Buffer[] = [];
  #length = 0;
  #done = false;

  constructor(stream: AsyncIterable<Buffer>) {
    this.#it = stream[Symbol.asyncIterator]();
  }

  async #fill(n: number): Promise<void> {
    while (this.#length < n && !this.#done) {
      const next = await this.#it.next();
      if (next.done) this.#done = true;
      else {
        this.#pending.push(next.value);
        this.#length += next.value.length;
      }
    }
  }

  /** Up to `n` bytes (fewer only at the end of the stream). */
  async read(n: number): Promise<Buffer> {
    await this.#fill(n);
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(out.length);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    return out;
  }

  /** Up to `n` bytes, as soon as some are there. */
  async readSome(n: number): Promise<Buffer> {
    await this.#fill(1);
    return this.read(Math.min(n, Math.max(this.#length, 1)));
  }
}

function field(header: Buffer, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString('utf8');
}

function octal(header: Buffer, offset: number, length: number, what: string): number {
  const text = field(header, offset, length).trim();
  if (!/^[0-7]{1,12}$/.test(text)) throw new BundleInvalid(`bad ${what} field`);
  return Number.parseInt(text, 8);
}

function checksumHolds(header: Buffer): boolean {
  const stored = octal(header, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === stored;
}

/** pax extended header records: `<len> <key>=<value>\n`. */
function paxPath(data: Buffer): string | undefined {
  let path: string | undefined;
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const len = Number(data.subarray(at, space).toString('ascii'));
    if (!Number.isSafeInteger(len) || len <= 0 || at + len > data.length) {
      throw new BundleInvalid('bad pax record');
    }
    const record = data.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    at += len;
  }
  return path;
}

/**
 * The entry's path inside `root`, or a refusal. Pure, exported for its tests: this is where a
 * name like `../x` or `/etc/x` is stopped.
 */
export function safeEntryPath(root: string, name: string): string {
  const trimmed = name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (trimmed === '' || trimmed === '.') return root;
  if (
    isAbsolute(trimmed) ||
    trimmed.includes('\0') ||
    trimmed.includes('\\') ||
    trimmed.split('/').some((part) => part === '..' || part === '')
  ) {
    throw new BundleInvalid(`entry name ${JSON.stringify(name.slice(0, 200))} is not allowed`);
  }
  const path = resolve(root, trimmed);
  if (!path.startsWith(root + sep)) {
    throw new BundleInvalid(`entry ${JSON.stringify(name.slice(0, 200))} leaves the bundle`);
  }
  return path;
}

/** A relative link target that stays inside the bundle. */
export function safeLinkTarget(root: string, entryPath: string, target: string): string {
  if (target === '' || isAbsolute(target) || target.includes('\0')) {
    throw new BundleInvalid(`link target ${JSON.stringify(target.slice(0, 200))} is not allowed`);
  }
  const resolved = resolve(dirname(entryPath), target);
  if (resolved !== root && !resolved.startsWith(root + sep)) {
    throw new BundleInvalid(`link ${relative(root, entryPath)} points outside the bundle`);
  }
  return posix.normalize(target);
}

/** Unpacks `archive` into `dest`, which must not exist yet. */
export async function unpackTarGz(
  archive: string,
  dest: string,
  limits: UnpackLimits,
): Promise<void> {
  const root = resolve(dest);
  await mkdir(root, { recursive: false, mode: 0o755 });
  const gunzip = createReadStream(archive).pipe(createGunzip());
  const reader = new ByteReader(gunzip);
  const links = new Set<string>();
  let total = 0;
  let entries = 0;
  let longName: string | undefined;
  try {
    for (;;) {
      const header = await reader.read(BLOCK);
      if (header.length < BLOCK) throw new BundleInvalid('the archive ends early');
      if (header.every((b) => b === 0)) break;
      if (!checksumHolds(header)) throw new BundleInvalid('a header checksum does not match');
      if (++entries > limits.maxEntries) {
        throw new BundleInvalid(`more than ${limits.maxEntries} entries`);
      }
      const type = String.fromCharCode(header[156]!);
      const size = octal(header, 124, 12, 'size');
      const padded = Math.ceil(size / BLOCK) * BLOCK;
      if (type === 'x' || type === 'L' || type === 'g') {
        if (size > MAX_META_BYTES) throw new BundleInvalid('an extended header is too large');
        const data = (await reader.read(padded)).subarray(0, size);
        if (data.length < size) throw new BundleInvalid('the archive ends early');
        if (type === 'x') longName = paxPath(data) ?? longName;
        else if (type === 'L') longName = field(data, 0, data.length);
        continue;
      }
      const ustar = field(header, 257, 6) === 'ustar';
      const prefix = ustar ? field(header, 345, 155) : '';
      const name =
        longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
      longName = undefined;
      const path = safeEntryPath(root, name);
      for (const link of links) {
        if (path.startsWith(link + sep)) {
          throw new BundleInvalid(`entry ${relative(root, path)} lies beneath a link`);
        }
      }
      const mode = octal(header, 100, 8, 'mode') & 0o777;
      if (type === '5') {
        await mkdir(path, { recursive: true, mode: 0o755 });
        await skip(reader, padded);
      } else if (type === '0' || type === '\0' || type === '7') {
        total += size;
        if (total > limits.maxBytes) {
          throw new BundleInvalid(`it unpacks to more than ${limits.maxBytes} bytes`);
        }
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await writeEntry(reader, path, size, mode & 0o755);
        await skip(reader, padded - size);
      } else if (type === '2') {
        const target = safeLinkTarget(root, path, field(header, 157, 100));
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await symlink(target, path);
        links.add(path);
        await skip(reader, padded);
      } else {
        throw new BundleInvalid(`entry ${relative(root, path)} has type ${JSON.stringify(type)}`);
      }
    }
  } catch (err) {
    gunzip.destroy();
    if (err instanceof BundleInvalid) throw err;
    throw new BundleInvalid((err as Error).message);
  }
  gunzip.destroy();
}

async function skip(reader: ByteReader, n: number): Promise<void> {
  let left = n;
  while (left > 0) {
    const got = await reader.readSome(Math.min(left, 64 * 1024));
    if (got.length === 0) throw new BundleInvalid('the archive ends early');
    left -= got.length;
  }
}

async function writeEntry(reader: ByteReader, path: string, size: number, mode: number) {
  // `wx`: an entry named twice is refused rather than overwriting the first.
  const file = await open(path, 'wx', mode).catch((err: NodeJS.ErrnoException) => {
    throw new BundleInvalid(
      err.code === 'EEXIST' ? `entry ${path} appears twice` : `cannot write ${path}: ${err.code}`,
    );
  });
  try {
    let left = size;
    while (left > 0) {
      const chunk = await reader.readSome(Math.min(left, 256 * 1024));
      if (chunk.length === 0) throw new BundleInvalid('the archive ends early');
      await file.write(chunk);
      left -= chunk.length;
    }
    await file.chmod(mode);
  } finally {
    await file.close();
  }
}
