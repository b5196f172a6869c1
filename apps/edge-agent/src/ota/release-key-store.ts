import { join } from 'node:path';
import { MAX_RELEASE_KEYS } from '@outpost/protocol/limits';
import { type PublicJwk, parsePublicJwk, thumbprint } from '@outpost/signing/keys';
import { z } from 'zod';
import { writeFileAtomic } from '../identity/identity-store.js';
import { readJsonFile } from './json-file.js';

/**
 * The release public keys this gateway trusts to sign manifests (PROTOCOL.md §1): those of
 * the enrollment reply until a `keys.release` command replaces the set, which is then kept
 * in `<dataDir>/release-keys.json` (0600, written atomically) so it survives restarts.
 *
 * `keys.release` is signed by the service, so following it blindly would let a compromised
 * service add a key of its own and sign firmware with it. With `pins` (RFC 7638 thumbprints
 * from the agent's own config, `ota.releaseKeyPins`) a key is trusted only if it is pinned:
 * the service can then still retire keys, never introduce one.
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

  readonly #pins: ReadonlySet<string> | undefined;
  readonly #enrolled: readonly unknown[];

  /** `enrolled`: the keys of the enrollment reply (identity.json). */
  constructor(dataDir: string, enrolled: readonly unknown[], pins?: readonly string[]) {
    this.#path = join(dataDir, RELEASE_KEYS_FILE);
    this.#pins = pins === undefined ? undefined : new Set(pins);
    this.#enrolled = enrolled;
    // Unpinned until load() has checked thumbprints: start with no key rather than too many.
    this.#keys = this.#pins === undefined ? parseKeys(enrolled) : [];
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
    if (read.state !== 'ok') {
      this.#keys = await this.#pinned(parseKeys(this.#enrolled));
      return { damaged: read.state === 'damaged' };
    }
    this.#keys = await this.#pinned(parseKeys(read.value.keys));
    return { damaged: false };
  }

  async #pinned(keys: PublicJwk[]): Promise<PublicJwk[]> {
    const pins = this.#pins;
    if (pins === undefined) return keys;
    const kept: PublicJwk[] = [];
    for (const key of keys) if (pins.has(await thumbprint(key))) kept.push(key);
    return kept;
  }

  /**
   * PROTOCOL.md §8 `keys.release`: the new set replaces the old one, on disk first. Returns
   * how many keys are trusted now and how many the pins left out.
   */
  async replace(
    keys: readonly unknown[],
    nowMs: number,
  ): Promise<{ trusted: number; unpinned: number }> {
    const usable = parseKeys(keys.slice(0, MAX_RELEASE_KEYS));
    const parsed = await this.#pinned(usable);
    const text = `${JSON.stringify(
      { v: 1, keys: parsed, receivedAt: new Date(nowMs).toISOString() },
      null,
      2,
    )}\n`;
    await writeFileAtomic(this.#path, text, 0o600);
    this.#keys = parsed;
    return { trusted: parsed.length, unpinned: usable.length - parsed.length };
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
