import { randomBytes } from 'node:crypto';
import { open, readFile, readlink, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_TEXT_LENGTH } from '@outpost/protocol/limits';
import { semverSchema } from '@outpost/protocol/ota';
import { z } from 'zod';
import { writeFileAtomic } from '../identity/identity-store.js';

/**
 * The install root of a self-updating agent and the one file the agent and its launcher
 * (bin/outpost-agent-launcher.mjs) share:
 *
 *   <installRoot>/versions/<version>/   one unpacked bundle per version
 *   <installRoot>/current               symlink → versions/<version>, switched atomically
 *   <installRoot>/trial.json            present while a new version is on trial
 *
 * trial.json: `phase` is `switching` (written before `current` moves to `to`), `trial` (the
 * new version runs and has not passed its probes), or `rolled_back` (`current` is back on
 * `from`; `reason` says why). The launcher counts `boots` of `to` and switches back after
 * `maxBoots`. Directories are relative to the install root. The launcher reads the same
 * format without this module: change both together.
 */
export const TRIAL_FILE = 'trial.json';
export const CURRENT_LINK = 'current';
export const VERSIONS_DIR = 'versions';

const VERSION_DIR = /^versions\/[0-9A-Za-z.+-]{1,64}$/;

export const trialMarkerSchema = z.object({
  v: z.literal(1),
  phase: z.enum(['switching', 'trial', 'rolled_back']),
  rolloutId: z.string().max(64).optional(),
  from: z.object({ version: semverSchema, dir: z.string().regex(VERSION_DIR) }),
  to: z.object({ version: semverSchema, dir: z.string().regex(VERSION_DIR) }),
  boots: z.number().int().nonnegative(),
  maxBoots: z.number().int().min(1).max(100),
  /** Epoch ms of the first trial boot: restarts do not extend the window. */
  trialStartedAt: z.number().nonnegative().nullable(),
  reason: z.string().max(MAX_TEXT_LENGTH).optional(),
});
export type TrialMarker = z.infer<typeof trialMarkerSchema>;

export function versionDir(version: string): string {
  return `${VERSIONS_DIR}/${version}`;
}

export async function readMarker(root: string): Promise<TrialMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(root, TRIAL_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = trialMarkerSchema.safeParse(safeJson(text));
  return parsed.success ? parsed.data : undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export async function writeMarker(root: string, marker: TrialMarker): Promise<void> {
  await writeFileAtomic(join(root, TRIAL_FILE), `${JSON.stringify(marker, null, 2)}\n`, 0o644);
}

export async function clearMarker(root: string): Promise<void> {
  await rm(join(root, TRIAL_FILE), { force: true });
  await syncDir(root);
}

/** Where `current` points, relative to the root (`versions/<v>`), or undefined. */
export async function currentDir(root: string): Promise<string | undefined> {
  try {
    const target = await readlink(join(root, CURRENT_LINK));
    const rel = target.startsWith(`${root}/`) ? target.slice(root.length + 1) : target;
    return VERSION_DIR.test(rel) ? rel : undefined;
  } catch {
    return undefined;
  }
}

/** Points `current` at `dir` in one step: a new link, renamed over the old one. */
export async function switchCurrent(root: string, dir: string): Promise<void> {
  if (!VERSION_DIR.test(dir)) throw new RangeError(`not a version dir: ${dir}`);
  const temp = join(root, `.current-${randomBytes(6).toString('hex')}`);
  await symlink(dir, temp);
  try {
    await rename(temp, join(root, CURRENT_LINK));
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await syncDir(root);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
