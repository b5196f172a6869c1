import { createReadStream } from 'node:fs';
import { mkdir, open, symlink } from 'node:fs/promises';
import { dirname, isAbsolute, posix, relative, resolve, sep } from 'node:path';
import { createGunzip } from 'node:zlib';
import { AgentError } from '../errors.js';

/**
 * Unpacks an agent bundle, a `.tar.gz` as `tar -czf` makes it (POSIX ustar, with pax `x` or
 * GNU `L` records for long names), into a fresh directory, with Node's zlib and tar-stream.
 * tar libraries extract whatever an archive holds; this accepts only what a bundle needs
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
  // tar-stream parses the format (ustar, pax and GNU long names, checksums); it is loaded
  // here, only when an update arrives, so a gateway at rest does not hold it in memory.
  const { extract } = await import('tar-stream');
  const entries = extract();
  const source = createReadStream(archive).pipe(createGunzip());
  source.on('error', (err) => entries.destroy(err));
  source.pipe(entries);
  const links = new Set<string>();
  let total = 0;
  let count = 0;
  try {
    for await (const entry of entries) {
      const { header } = entry;
      if (++count > limits.maxEntries) {
        throw new BundleInvalid(`more than ${limits.maxEntries} entries`);
      }
      const path = safeEntryPath(root, header.name);
      for (const link of links) {
        if (path.startsWith(link + sep)) {
          throw new BundleInvalid(`entry ${relative(root, path)} lies beneath a link`);
        }
      }
      const mode = (header.mode ?? 0o644) & 0o755;
      const size = header.size ?? 0;
      if (header.type === 'directory') {
        await mkdir(path, { recursive: true, mode: 0o755 });
        entry.resume();
      } else if (header.type === 'file' || header.type === 'contiguous-file') {
        total += size;
        if (total > limits.maxBytes) {
          throw new BundleInvalid(`it unpacks to more than ${limits.maxBytes} bytes`);
        }
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await writeEntry(entry as AsyncIterable<Buffer>, path, size, mode);
      } else if (header.type === 'symlink') {
        const target = safeLinkTarget(root, path, header.linkname ?? '');
        await mkdir(dirname(path), { recursive: true, mode: 0o755 });
        await symlink(target, path);
        links.add(path);
        entry.resume();
      } else {
        throw new BundleInvalid(
          `entry ${relative(root, path)} has type ${JSON.stringify(header.type)}`,
        );
      }
    }
  } catch (err) {
    source.destroy();
    entries.destroy();
    if (err instanceof BundleInvalid) throw err;
    throw new BundleInvalid((err as Error).message);
  }
}

async function writeEntry(entry: AsyncIterable<Buffer>, path: string, size: number, mode: number) {
  // `wx`: an entry named twice is refused rather than overwriting the first.
  const file = await open(path, 'wx', mode).catch((err: NodeJS.ErrnoException) => {
    throw new BundleInvalid(
      err.code === 'EEXIST' ? `entry ${path} appears twice` : `cannot write ${path}: ${err.code}`,
    );
  });
  try {
    let written = 0;
    for await (const chunk of entry) {
      written += chunk.length;
      // The header's size bounded `total`; the body may not say otherwise.
      if (written > size) throw new BundleInvalid(`entry ${path} is longer than its header says`);
      await file.write(chunk);
    }
    if (written < size) throw new BundleInvalid('the archive ends early');
    await file.chmod(mode);
  } finally {
    await file.close();
  }
}
