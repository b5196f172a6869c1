/**
 * Chart redraws, paced: readings mark a chart dirty and redraws happen in animation frames,
 * at most one per chart every `minIntervalMs`, and at most `budgetMs` of drawing per frame
 * (the rest waits for the next frame). With 20 charts and hundreds of readings a second the
 * main thread keeps time for input and scrolling, and nothing is drawn while the tab is
 * hidden (browsers pause animation frames).
 */
export interface SchedulerDeps {
  requestFrame(fn: () => void): void;
  setTimeout(fn: () => void, ms: number): void;
  now(): number;
}

const browserDeps = (): SchedulerDeps => ({
  requestFrame: (fn) => void requestAnimationFrame(fn),
  setTimeout: (fn, ms) => void globalThis.setTimeout(fn, ms),
  now: () => performance.now(),
});

export class FrameScheduler {
  /** Dirty draws and the earliest time each may run. */
  private readonly dirty = new Map<() => void, number>();
  private readonly lastRun = new WeakMap<() => void, number>();
  private frameRequested = false;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly minIntervalMs = 250,
    private readonly budgetMs = 8,
    private readonly deps: SchedulerDeps = browserDeps(),
  ) {}

  schedule(draw: () => void): void {
    if (this.dirty.has(draw)) return;
    const last = this.lastRun.get(draw);
    this.dirty.set(draw, last === undefined ? 0 : last + this.minIntervalMs);
    this.wake();
  }

  cancel(draw: () => void): void {
    this.dirty.delete(draw);
  }

  private wake(): void {
    if (this.frameRequested || this.dirty.size === 0) return;
    const now = this.deps.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const due of this.dirty.values()) earliest = Math.min(earliest, due);
    // Due within about a frame: draw in the next one; else sleep until then.
    if (earliest - now <= 16) {
      this.frameRequested = true;
      this.deps.requestFrame(() => this.flush());
    } else if (earliest < this.timerAt) {
      this.timerAt = earliest;
      this.deps.setTimeout(() => {
        this.timerAt = Number.POSITIVE_INFINITY;
        this.wake();
      }, earliest - now);
    }
  }

  private flush(): void {
    this.frameRequested = false;
    const start = this.deps.now();
    for (const [draw, due] of this.dirty) {
      const now = this.deps.now();
      if (now - start >= this.budgetMs) break;
      if (due > now + 1) continue;
      this.dirty.delete(draw);
      this.lastRun.set(draw, now);
      draw();
    }
    this.wake();
  }
}

export const frames = new FrameScheduler();
