import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where work dirs are made: `OUTPOST_TEST_DIR`, else `<tmpdir>/outpost-test`. */
export function testRootDir(): string {
  const fromEnv = process.env.OUTPOST_TEST_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(tmpdir(), 'outpost-test');
}

/** `OUTPOST_TEST_KEEP=1` keeps every work dir, passed or failed. */
export function keepRequested(): boolean {
  const value = process.env.OUTPOST_TEST_KEEP;
  return value === '1' || value === 'true';
}

export interface CleanupOptions {
  /** Keep the directory (e.g. because the test failed) and print where it is. */
  keep?: boolean;
}

export interface WorkDir {
  readonly path: string;
  /** A path inside the work dir (nothing is created). */
  join(...parts: string[]): string;
  /** Creates a subdirectory (and parents) and returns its path. */
  mkdir(...parts: string[]): Promise<string>;
  /** Removes the directory unless kept; returns whether it was removed. Idempotent. */
  cleanup(options?: CleanupOptions): Promise<boolean>;
}

function safeName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '');
  return (cleaned === '' ? 'work' : cleaned).slice(0, 48);
}

/** A fresh, uniquely named directory for one test or service, e.g. `redis-Xa81Qz`. */
export async function makeWorkDir(name: string): Promise<WorkDir> {
  const root = testRootDir();
  await mkdir(root, { recursive: true, mode: 0o755 });
  const path = await mkdtemp(join(root, `${safeName(name)}-`));
  // Daemons that drop to their own user (PostgreSQL) must be able to reach their subdirs.
  await chmod(path, 0o755);
  let removed = false;
  return {
    path,
    join: (...parts) => join(path, ...parts),
    async mkdir(...parts) {
      const dir = join(path, ...parts);
      await mkdir(dir, { recursive: true });
      return dir;
    },
    async cleanup(options = {}) {
      if (removed) return true;
      if (options.keep === true || keepRequested()) {
        process.stderr.write(`[test-kit] kept ${path}\n`);
        return false;
      }
      await rm(path, { recursive: true, force: true, maxRetries: 3 });
      removed = true;
      return true;
    },
  };
}
