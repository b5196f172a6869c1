import { describe, expect, it } from 'vitest';
import { ClockQualityTracker } from './clock-quality.js';

function clocks(startWall = Date.UTC(2025, 0, 1)) {
  let wall = startWall;
  let mono = 1000;
  return {
    now: () => wall,
    monotonic: () => mono,
    /** Real time passes: both clocks move. */
    pass(ms: number) {
      wall += ms;
      mono += ms;
    },
    /** Someone sets the wall clock: only it moves. */
    jump(ms: number) {
      wall += ms;
    },
  };
}

describe('ClockQualityTracker', () => {
  it('starts unsynced and becomes synced on timesyncd evidence', () => {
    const c = clocks();
    const t = new ClockQualityTracker(c);
    expect(t.quality()).toBe('unsynced');
    expect(t.report({ source: 'timesyncd', synchronized: false })).toBe('unsynced');
    expect(t.report({ source: 'timesyncd', synchronized: true, touchedMs: c.now() })).toBe(
      'synced',
    );
    c.pass(30_000);
    expect(t.quality()).toBe('synced');
  });

  it.each([
    ['forwards', 3_600_000],
    ['backwards', -3_600_000],
  ])('flags a jump %s as unsynced and tells the listeners', (_name, by) => {
    const c = clocks();
    const t = new ClockQualityTracker(c);
    const jumps: number[] = [];
    t.onJump((j) => jumps.push(j.byMs));
    t.report({ source: 'ingest', offsetMs: 100 });
    expect(t.quality()).toBe('synced');
    c.pass(500);
    c.jump(by);
    expect(t.quality()).toBe('unsynced');
    expect(jumps).toEqual([by]);
    expect(t.jumps).toBe(1);
    // Time passing normally afterwards is not another jump.
    c.pass(10_000);
    expect(t.check()).toBeUndefined();
  });

  it('ignores drift within the tolerance', () => {
    const c = clocks();
    const t = new ClockQualityTracker({ ...c, jumpToleranceMs: 1000 });
    t.report({ source: 'ingest', offsetMs: 0 });
    c.pass(60_000);
    c.jump(800);
    expect(t.quality()).toBe('synced');
  });

  it('after a jump, trusts the timesyncd flag only if it was touched since', () => {
    const c = clocks();
    const t = new ClockQualityTracker(c);
    const touchedBefore = c.now();
    t.report({ source: 'timesyncd', synchronized: true, touchedMs: touchedBefore });
    c.pass(1000);
    c.jump(-600_000);
    t.check();
    // The flag file is now "in the future": it says nothing about the new time.
    expect(t.report({ source: 'timesyncd', synchronized: true, touchedMs: touchedBefore })).toBe(
      'unsynced',
    );
    c.pass(5000);
    expect(t.report({ source: 'timesyncd', synchronized: true, touchedMs: c.now() })).toBe(
      'synced',
    );
  });

  it('lets an ingest disagreement outweigh the timesyncd flag until the ingest agrees', () => {
    const c = clocks();
    const t = new ClockQualityTracker({ ...c, toleranceMs: 2000 });
    expect(t.report({ source: 'ingest', offsetMs: 90_000 })).toBe('unsynced');
    expect(t.offsetMs).toBe(90_000);
    expect(t.report({ source: 'timesyncd', synchronized: true, touchedMs: c.now() })).toBe(
      'unsynced',
    );
    expect(t.report({ source: 'ingest', offsetMs: -1500 })).toBe('synced');
  });
});
