/**
 * Remembers token ids (`jti`) until their token could no longer verify anyway. One process
 * uses the in-memory cache below; a cluster plugs in a shared store with the same contract.
 */
export interface ReplayCache {
  /**
   * Records `jti` until `expiresAt` (epoch seconds). Returns `true` the first time an id is
   * seen and `false` for every later sighting before it expires. Must be atomic per id.
   */
  checkAndRemember(jti: string, expiresAt: number): Promise<boolean> | boolean;
}

export interface MemoryReplayCacheOptions {
  /** Most ids held at once. */
  maxEntries?: number;
  /** Current time in epoch seconds. */
  now?: () => number;
}

export const DEFAULT_REPLAY_CACHE_ENTRIES = 100_000;

/**
 * A bounded in-memory `ReplayCache`. Expired ids are swept when the cache fills (at most once a
 * second); if it is still full, the oldest remembered id is forgotten. That trade keeps memory bounded under a flood of
 * fresh ids at the cost of possibly accepting a replay of the oldest one, so size it above the
 * number of tokens a verifier sees within one maximum token lifetime.
 */
export class MemoryReplayCache implements ReplayCache {
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** jti → expiresAt, in insertion order. */
  readonly #seen = new Map<string, number>();
  #lastSweep = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryReplayCacheOptions = {}) {
    this.#maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_REPLAY_CACHE_ENTRIES);
    this.#now = options.now ?? (() => Date.now() / 1000);
  }

  get size(): number {
    return this.#seen.size;
  }

  checkAndRemember(jti: string, expiresAt: number): boolean {
    const now = this.#now();
    const known = this.#seen.get(jti);
    if (known !== undefined) {
      if (known > now) return false;
      this.#seen.delete(jti);
    }
    if (this.#seen.size >= this.#maxEntries) this.#makeRoom(now);
    this.#seen.set(jti, expiresAt);
    return true;
  }

  #makeRoom(now: number): void {
    // A full sweep at most once a second, so a flood of fresh ids costs O(1) per id.
    if (now - this.#lastSweep >= 1) {
      this.#lastSweep = now;
      for (const [jti, expiresAt] of this.#seen) {
        if (expiresAt <= now) this.#seen.delete(jti);
      }
    }
    if (this.#seen.size >= this.#maxEntries) {
      const oldest = this.#seen.keys().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
  }
}
