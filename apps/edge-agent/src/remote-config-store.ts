import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { type RemoteConfigInput, remoteConfigSchema } from './config.js';
import { writeFileAtomic } from './identity/identity-store.js';

/**
 * The last `config.desired` (PROTOCOL.md §8) the agent accepted, kept in
 * `<dataDir>/remote-config.json` so it survives restarts. It is stored as received and
 * validated again when read, so a file from an older agent cannot break a newer one.
 */
export const REMOTE_CONFIG_FILE = 'remote-config.json';

const storedSchema = z.object({
  version: z.number().int().nonnegative(),
  config: z.record(z.string(), z.unknown()),
  receivedAt: z.string(),
});

export interface StoredRemoteConfig {
  version: number;
  config: z.output<typeof remoteConfigSchema>;
  raw: RemoteConfigInput;
}

export async function readRemoteConfig(dataDir: string): Promise<StoredRemoteConfig | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, REMOTE_CONFIG_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const stored = storedSchema.safeParse(JSON.parse(text));
  if (!stored.success) return undefined;
  const config = remoteConfigSchema.safeParse(stored.data.config);
  if (!config.success) return undefined;
  return {
    version: stored.data.version,
    config: config.data,
    raw: stored.data.config as RemoteConfigInput,
  };
}

export async function writeRemoteConfig(
  dataDir: string,
  version: number,
  raw: Record<string, unknown>,
  nowMs: number,
): Promise<void> {
  const text = JSON.stringify(
    { version, config: raw, receivedAt: new Date(nowMs).toISOString() },
    null,
    2,
  );
  await writeFileAtomic(join(dataDir, REMOTE_CONFIG_FILE), `${text}\n`, 0o640);
}
