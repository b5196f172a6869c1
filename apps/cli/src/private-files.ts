import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CliError } from './errors.js';

/** Files holding secrets: private keys, the login profile. Owner-only from the first byte. */

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** Creates `dir` (and missing parents) as 0700; an existing directory is left as it is. */
export async function makePrivateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  } catch (err) {
    throw fileError(err, dir, 'cannot create the directory');
  }
}

export interface WriteOptions {
  /** Replace an existing file; without it an existing file is an error. */
  overwrite: boolean;
  mode?: number;
}

/**
 * Writes `text` to `path` with `mode` (0600 by default). The file is created with that mode,
 * so it is never readable by others, even for a moment. Replacing goes through a temporary
 * file and a rename, so a reader sees the old or the new content, never half of one.
 */
export async function writePrivateFile(
  path: string,
  text: string,
  options: WriteOptions,
): Promise<void> {
  const mode = options.mode ?? PRIVATE_FILE_MODE;
  if (!options.overwrite) {
    await writeNew(path, text, mode);
    return;
  }
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeNew(temp, text, mode);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err instanceof CliError ? err : fileError(err, path, 'cannot write');
  }
}

async function writeNew(path: string, text: string, mode: number): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'wx', mode);
  } catch (err) {
    throw fileError(err, path, 'cannot create');
  }
  try {
    // The umask may have removed bits; it never adds any, but make the mode exact.
    await handle.chmod(mode);
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(path, { force: true });
    throw fileError(err, path, 'cannot write');
  }
  await handle.close();
}

export function fileError(err: unknown, path: string, what: string): CliError {
  const code = (err as { code?: unknown })?.code;
  if (code === 'EEXIST') {
    return new CliError('conflict', 'file_exists', `${path} already exists`, {
      hint: 'choose another path, or pass --force to replace it',
    });
  }
  const reason =
    code === 'EACCES' || code === 'EPERM'
      ? 'permission denied'
      : code === 'ENOENT'
        ? 'no such file or directory'
        : code === 'ENOTDIR'
          ? 'a part of the path is not a directory'
          : code === 'ENOSPC'
            ? 'no space left on the device'
            : err instanceof Error
              ? err.message
              : String(err);
  return new CliError('invalid', 'file_error', `${what} ${path}: ${reason}`, { cause: err });
}

/** A private file written aside, put in place only once the work it belongs to succeeded. */
export interface StagedFile {
  /** Where the staged copy is until it is committed. */
  readonly path: string;
  /** Moves the file to its path; without `overwrite`, an existing file is an error. */
  commit(overwrite: boolean): Promise<void>;
  /** Removes the staged copy (safe to call after a commit). */
  discard(): Promise<void>;
}

export async function stagePrivateFile(path: string, text: string): Promise<StagedFile> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  await writeNew(temp, text, PRIVATE_FILE_MODE);
  return {
    path: temp,
    async commit(overwrite) {
      try {
        if (overwrite) {
          await rename(temp, path);
        } else {
          // link(2) fails with EEXIST instead of replacing: no file is ever clobbered.
          await link(temp, path);
          await rm(temp, { force: true });
        }
      } catch (err) {
        throw fileError(err, path, 'cannot write');
      }
    },
    async discard() {
      await rm(temp, { force: true });
    },
  };
}

/** True when something exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return false;
    throw fileError(err, path, 'cannot check');
  }
}
