import { describe, expect, it } from 'vitest';
import { FrameScheduler } from './frame-scheduler.js';

/** Frames and timers the test runs by hand, on a clock it moves. */
function harness(minIntervalMs = 250, budgetMs = 8) {
  const clock = { now: 0 };
  const frames: (() => void)[] = [];
  const timers: { at: number; fn: () => void }[] = [];
  const s = new FrameScheduler(minIntervalMs, budgetMs, {
    requestFrame: (fn) => frames.push(fn),
    setTimeout: (fn, ms) => timers.push({ at: clock.now + ms, fn }),
    now: () => clock.now,
  });
  const frame = () => {
    const f = frames.splice(0);
    for (const fn of f) fn();
  };
  const advance = (ms: number) => {
    clock.now += ms;
    for (const t of timers.filter((x) => x.at <= clock.now)) {
      timers.splice(timers.indexOf(t), 1);
      t.fn();
    }
  };
  return { s, clock, frames, frame, advance };
}

describe('FrameScheduler', () => {
  it('draws each dirty chart once per frame, however often it was scheduled', () => {
    const h = harness();
    const drawn: string[] = [];
    const a = () => drawn.push('a');
    const b = () => drawn.push('b');
    for (let i = 0; i < 100; i++) {
      h.s.schedule(a);
      h.s.schedule(b);
    }
    expect(h.frames).toHaveLength(1);
    h.frame();
    expect(drawn).toEqual(['a', 'b']);
    h.s.schedule(a);
    h.s.cancel(a);
    h.advance(1000);
    h.frame();
    expect(drawn).toEqual(['a', 'b']);
  });

  it('redraws a chart at most once per interval', () => {
    const h = harness(250);
    let n = 0;
    const draw = () => n++;
    h.s.schedule(draw);
    h.frame();
    expect(n).toBe(1);
    h.s.schedule(draw);
    expect(h.frames).toHaveLength(0);
    h.advance(200);
    h.frame();
    expect(n).toBe(1);
    h.advance(50);
    expect(h.frames).toHaveLength(1);
    h.frame();
    expect(n).toBe(2);
  });

  it('leaves the rest for the next frame once a frame has spent its budget', () => {
    const h = harness(250, 8);
    const drawn: number[] = [];
    const draws = Array.from({ length: 10 }, (_, i) => () => {
      drawn.push(i);
      h.clock.now += 3;
    });
    for (const d of draws) h.s.schedule(d);
    h.frame();
    expect(drawn).toEqual([0, 1, 2]);
    h.frame();
    expect(drawn).toEqual([0, 1, 2, 3, 4, 5]);
    h.frame();
    h.frame();
    expect(drawn).toHaveLength(10);
  });
});
