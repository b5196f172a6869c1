import { join } from 'node:path';
import { MAX_RELEASE_KEYS } from '@outpost/protocol/limits';
import { type PublicJwk, parsePublicJwk } from '@outpost/signing/keys';
import { z } from 'zod';
import { writeFileAtomic } from '../identity/identity-store.js';
import { readJsonFile } from './json-file.js';

/**
 * The release public keys this gateway trusts to sign manifests (PROTOCOL.md §1): those of
 * the enrollment reply until a `keys.release` command replaces the set, which is then kept
 * in `<dataDir>/release-keys.json` (0600, written atomically) so it survives restarts.
 */
export const RELEASE_KEYS_FILE = 'release-keys.json';

const fileSchema = z.object({
  v: z.literal(1),
  keys: z.array(z.unknown()).max(MAX_RELEASE_KEYS),
  receivedAt: z.string().max(64),
});

export class ReleaseKeyStore {
  readonly #path: string;
  #keys: PublicJwk[];

  /** `enrolled`: the keys of the enrollment reply (identity.json). */
  constructor(dataDir: string, enrolled: readonly unknown[]) {
    this.#path = join(dataDir, RELEASE_KEYS_FILE);
    this.#keys = parseKeys(enrolled);
  }

  get path(): string {
    return this.#path;
  }

  /** The trusted keys now. */
  current(): readonly PublicJwk[] {
    return this.#keys;
  }

  /** Prefers the last `keys.release` set on disk over the enrollment's. */
  async load(): Promise<{ damaged: boolean }> {
    const read = await readJsonFile(this.#path, fileSchema);
    if (read.state !== 'ok') return { damaged: read.state === 'damaged' };
    const parsed = read.value;
    this.#keys = parseKeys(parsed.keys);
    return { damaged: false };
  }

  /** PROTOCOL.md §8 `keys.release`: the new set replaces the old one, on disk first. */
  async replace(keys: readonly unknown[], nowMs: number): Promise<void> {
    const parsed = parseKeys(keys.slice(0, MAX_RELEASE_KEYS));
    const text = `${JSON.stringify(
      { v: 1, keys: parsed, receivedAt: new Date(nowMs).toISOString() },
      null,
      2,
    )}\n`;
    await writeFileAtomic(this.#path, text, 0o600);
    this.#keys = parsed;
  }
}

/** Public keys only; anything else (a private key, another key type) is left out. */
function parseKeys(keys: readonly unknown[]): PublicJwk[] {
  const out: PublicJwk[] = [];
  for (const key of keys.slice(0, MAX_RELEASE_KEYS)) {
    try {
      out.push(parsePublicJwk(key));
    } catch {
      // not a usable release key
    }
  }
  return out;
}
