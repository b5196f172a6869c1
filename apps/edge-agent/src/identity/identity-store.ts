import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { deviceIdSchema, deviceKindSchema } from '@outpost/protocol/ids';
import { type Jwks, parseJwks } from '@outpost/signing/jwks';
import { type PrivateJwk, parsePrivateJwk } from '@outpost/signing/keys';
import { z } from 'zod';
import { AgentError } from '../errors.js';

/**
 * The gateway's identity, written by `outpost-agent enroll` into the data dir:
 * `identity.json` (who we are, where the ingest is, the service JWKS that verifies commands)
 * and `device-key.json` (the private key, mode 0600, never leaves the machine).
 */
export const IDENTITY_FILE = 'identity.json';
export const KEY_FILE = 'device-key.json';
export const KEY_FILE_MODE = 0o600;

export const identitySchema = z.object({
  v: z.literal(1),
  deviceId: deviceIdSchema,
  kind: deviceKindSchema,
  gateway: deviceIdSchema.nullable(),
  kid: z.string().min(1),
  /** HTTP base URL of the ingest (enrollment reply `endpoints.http`). */
  server: z.url(),
  mqtt: z.object({
    host: z.string().min(1),
    port: z.number().int().min(0).max(65_535),
    tlsPort: z.number().int().min(0).max(65_535).nullable(),
  }),
  audience: z.string().min(1),
  /** The service JWKS (PROTOCOL.md §2 step 3); verifies commands. */
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }),
  releaseKeys: z.array(z.unknown()),
  enrolledAt: z.string(),
});
export type Identity = z.infer<typeof identitySchema>;

export interface LoadedIdentity {
  identity: Identity;
  privateJwk: PrivateJwk;
  jwks: Jwks;
}

export function identityPaths(dataDir: string): { identity: string; key: string } {
  return { identity: join(dataDir, IDENTITY_FILE), key: join(dataDir, KEY_FILE) };
}

export async function identityExists(dataDir: string): Promise<boolean> {
  const paths = identityPaths(dataDir);
  for (const path of [paths.identity, paths.key]) {
    try {
      await stat(path);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

/** Reads and checks both files; refuses a key file others may read (as ssh does). */
export async function loadIdentity(dataDir: string): Promise<LoadedIdentity> {
  const paths = identityPaths(dataDir);
  const hint = 'run `outpost-agent enroll --server URL --token TOKEN` first';
  const identityText = await readText(paths.identity, hint);
  const keyStat = await stat(paths.key).catch((cause: unknown) => {
    throw new AgentError('invalid', 'identity_missing', `cannot read ${paths.key}`, {
      cause,
      hint,
    });
  });
  if ((keyStat.mode & 0o077) !== 0) {
    throw new AgentError(
      'invalid',
      'key_file_mode',
      `${paths.key} is readable by others (mode ${(keyStat.mode & 0o777).toString(8)})`,
      { hint: `chmod 600 ${paths.key}` },
    );
  }
  const keyText = await readText(paths.key, hint);
  let identity: Identity;
  let privateJwk: PrivateJwk;
  let jwks: Jwks;
  try {
    identity = identitySchema.parse(JSON.parse(identityText));
    jwks = await parseJwks(identity.jwks);
    privateJwk = parsePrivateJwk(JSON.parse(keyText));
  } catch (cause) {
    throw new AgentError('invalid', 'identity_invalid', `the identity in ${dataDir} is damaged`, {
      cause,
      hint: 'enroll again with a new enrollment token (--force)',
    });
  }
  return { identity, privateJwk, jwks };
}

async function readText(path: string, hint: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    throw new AgentError('invalid', 'identity_missing', `cannot read ${path}`, { cause, hint });
  }
}

/**
 * Writes the key (0600 from its first byte) and then the identity, each through a
 * temporary file, fsync and rename, so a crash leaves the old pair or the new one.
 */
export async function writeIdentity(
  dataDir: string,
  identity: Identity,
  privateJwk: PrivateJwk,
): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o750 });
  const paths = identityPaths(dataDir);
  await writeFileAtomic(paths.key, `${JSON.stringify(privateJwk, null, 2)}\n`, KEY_FILE_MODE);
  await writeFileAtomic(paths.identity, `${JSON.stringify(identity, null, 2)}\n`, 0o644);
}

export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    // The umask may have removed bits; make the mode exact.
    await handle.chmod(mode);
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(temp, path);
  // The rename itself must reach the disk too.
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
