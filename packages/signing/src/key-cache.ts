import { KeyObject } from 'node:crypto';
import type { SigningAlgorithm } from '@outpost/protocol/claims';
import { type CryptoKey, importJWK } from 'jose';
import { SigningError } from './errors.js';
import { algorithmOf, type PublicJwk, parsePublicJwk, thumbprint } from './keys.js';

/** A validated public key, imported once for verification. */
export interface ImportedKey {
  readonly jwk: PublicJwk;
  /** RFC 7638 thumbprint, computed here: never taken from the JWK's own `kid` member. */
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly key: CryptoKey;
  /** The same key for `node:crypto`, which verifies without WebCrypto's per-call overhead. */
  readonly keyObject: KeyObject;
}

export interface KeyCacheOptions {
  /** Most keys held; the least recently used is dropped first. `0` imports on every call. */
  maxEntries?: number;
}

export const DEFAULT_KEY_CACHE_ENTRIES = 10_000;

interface Entry {
  readonly imported: Promise<ImportedKey>;
  /** Known once the import has finished; used by `invalidate`. */
  kid: string | undefined;
}

/**
 * Imports each public JWK into a `CryptoKey` once. Re-importing costs about 60% of a verify
 * (ENVIRONMENT.md), so the verifier keeps keys here, least recently used first out.
 *
 * Entries are keyed by the RFC 7638 member string of the key (`crv`, `kty`, `x`, `y`): the very
 * input the `kid` is a SHA-256 of. A JWK whose material changed can therefore never be served a
 * stale key under its old `kid`, and no separate hash is needed.
 */
export class KeyCache {
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Entry>();

  constructor(options: KeyCacheOptions = {}) {
    this.#maxEntries = options.maxEntries ?? DEFAULT_KEY_CACHE_ENTRIES;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Validates `jwk` (see `parsePublicJwk`), then returns its imported key. */
  get(jwk: PublicJwk): Promise<ImportedKey> {
    const checked = parsePublicJwk(jwk);
    const id = memberString(checked);
    const hit = this.#entries.get(id);
    if (hit !== undefined) {
      // Map order is insertion order: re-inserting marks the entry most recently used.
      this.#entries.delete(id);
      this.#entries.set(id, hit);
      return hit.imported;
    }
    const imported = importKey(checked);
    if (this.#maxEntries <= 0) return imported;
    const entry: Entry = { imported, kid: undefined };
    this.#entries.set(id, entry);
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    imported.then(
      (key) => {
        entry.kid = key.kid;
      },
      () => {
        if (this.#entries.get(id) === entry) this.#entries.delete(id);
      },
    );
    return imported;
  }

  /** Drops every key with this `kid` (e.g. a revoked device or a retired service key). */
  invalidate(kid: string): number {
    let dropped = 0;
    for (const [id, entry] of this.#entries) {
      if (entry.kid === kid) {
        this.#entries.delete(id);
        dropped += 1;
      }
    }
    return dropped;
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** Shared by every verifier that is not given its own cache. */
export const defaultKeyCache = new KeyCache();

function memberString(jwk: PublicJwk): string {
  // RFC 7638 §3.3: required members in lexicographic order, no whitespace.
  return jwk.kty === 'OKP'
    ? `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}"}`
    : `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`;
}

async function importKey(jwk: PublicJwk): Promise<ImportedKey> {
  const alg = algorithmOf(jwk);
  const members =
    jwk.kty === 'OKP'
      ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x }
      : { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  let key: CryptoKey;
  try {
    key = await importJWK(members, alg);
  } catch (cause) {
    // e.g. a P-256 point that is not on the curve.
    throw new SigningError('key_invalid', 'the public key cannot be imported', { cause });
  }
  return { jwk, kid: await thumbprint(jwk), alg, key, keyObject: KeyObject.from(key) };
}
