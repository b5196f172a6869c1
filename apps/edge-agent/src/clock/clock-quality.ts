import type { ClockQuality } from '@outpost/protocol/senml';

/**
 * How far the agent trusts its wall clock (PROTOCOL.md §5 `cq`). Pure: the wall clock and a
 * monotonic clock are injected, evidence is reported by the probes.
 *
 * - The clock starts `unsynced`: after a boot without RTC it may be anywhere.
 * - It becomes `synced` on evidence: systemd-timesyncd's `synchronized` flag file touched
 *   since the last jump, or the ingest's HTTP `Date` agreeing within the tolerance.
 * - It goes back to `unsynced` when the wall clock jumps (it moved differently from the
 *   monotonic clock by more than `jumpToleranceMs`), or when the ingest disagrees. An ingest
 *   disagreement outweighs the timesyncd flag until the ingest agrees again or the clock
 *   jumps (a correction).
 *
 * Records keep their wall-clock timestamps either way: the agent flags, it never rewrites.
 */
export interface ClockQualityOptions {
  /** Wall clock, epoch ms. */
  now: () => number;
  /** Monotonic ms (performance.now). */
  monotonic: () => number;
  /** A wall/monotonic divergence above this is a jump; default 1 s. */
  jumpToleranceMs?: number;
  /** Largest ingest clock offset still called synced; default 2 s (`Date` has 1 s steps). */
  toleranceMs?: number;
}

export interface ClockJump {
  /** Positive: the wall clock moved forward by this much more than real time. */
  byMs: number;
  /** Wall clock after the jump. */
  atMs: number;
}

export type ClockEvidence =
  | { source: 'timesyncd'; synchronized: boolean; touchedMs?: number }
  | { source: 'ingest'; offsetMs: number };

export class ClockQualityTracker {
  readonly #now: () => number;
  readonly #monotonic: () => number;
  readonly #jumpToleranceMs: number;
  readonly #toleranceMs: number;
  #quality: ClockQuality = 'unsynced';
  #lastWall: number;
  #lastMono: number;
  /** Wall time right after the last jump (or at start). */
  #sinceMs: number;
  #ingestDisagrees = false;
  #offsetMs: number | undefined;
  #jumps = 0;
  readonly #listeners = new Set<(jump: ClockJump) => void>();

  constructor(options: ClockQualityOptions) {
    this.#now = options.now;
    this.#monotonic = options.monotonic;
    this.#jumpToleranceMs = options.jumpToleranceMs ?? 1000;
    this.#toleranceMs = options.toleranceMs ?? 2000;
    this.#lastWall = this.#now();
    this.#lastMono = this.#monotonic();
    this.#sinceMs = Number.NEGATIVE_INFINITY;
  }

  /** The quality to stamp on a reading taken now (checks for a jump first). */
  quality(): ClockQuality {
    this.check();
    return this.#quality;
  }

  get jumps(): number {
    return this.#jumps;
  }

  /**
   * The ingest's clock minus ours, from the last `Date` probe (ms). Device JWTs use it so a
   * wrong local clock does not make every token look expired to the broker.
   */
  get offsetMs(): number | undefined {
    return this.#offsetMs;
  }

  onJump(listener: (jump: ClockJump) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Looks for a jump since the last call; cheap, call it often. */
  check(): ClockJump | undefined {
    const wall = this.#now();
    const mono = this.#monotonic();
    const drift = wall - this.#lastWall - (mono - this.#lastMono);
    this.#lastWall = wall;
    this.#lastMono = mono;
    if (Math.abs(drift) <= this.#jumpToleranceMs) return undefined;
    const jump = { byMs: drift, atMs: wall };
    this.#jumps++;
    this.#quality = 'unsynced';
    this.#sinceMs = wall;
    // A jump may be the correction that makes the ingest agree again: ask it afresh.
    this.#ingestDisagrees = false;
    this.#offsetMs = undefined;
    for (const listener of this.#listeners) listener(jump);
    return jump;
  }

  /** Takes in what a probe found. */
  report(evidence: ClockEvidence): ClockQuality {
    this.check();
    const now = this.#now();
    if (evidence.source === 'ingest') {
      this.#offsetMs = evidence.offsetMs;
      this.#ingestDisagrees = Math.abs(evidence.offsetMs) > this.#toleranceMs;
      this.#quality = this.#ingestDisagrees ? 'unsynced' : 'synced';
    } else if (!this.#ingestDisagrees) {
      // The flag file counts only if it was touched after the last jump (and not in the
      // future, which is what a file looks like after the clock was set back).
      const touched = evidence.touchedMs;
      const fresh =
        touched === undefined ||
        (touched >= this.#sinceMs - this.#jumpToleranceMs && touched <= now + this.#toleranceMs);
      if (evidence.synchronized && fresh) this.#quality = 'synced';
      else if (!evidence.synchronized && this.#offsetMs === undefined) this.#quality = 'unsynced';
    }
    return this.#quality;
  }
}
