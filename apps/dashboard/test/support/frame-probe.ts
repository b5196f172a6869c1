import type { Page } from 'playwright-core';

/**
 * Measures the page from inside: requestAnimationFrame deltas (frame time), long tasks
 * (main-thread work over 50 ms) and layout shifts (CLS, shifts not caused by input).
 */
export interface FrameStats {
  frames: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  longTasks: number;
  longTaskMs: number;
  layoutShift: number;
}

interface ProbeWindow {
  __probe?: { deltas: number[]; longTasks: number[]; shift: number; stop(): void };
}

export async function startProbe(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as ProbeWindow;
    w.__probe?.stop();
    const deltas: number[] = [];
    const longTasks: number[] = [];
    const state = { deltas, longTasks, shift: 0, stop: (): void => undefined };
    let last = 0;
    let running = true;
    const tick = (t: number) => {
      if (!running) return;
      if (last > 0) deltas.push(t - last);
      last = t;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    const tasks = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) longTasks.push(e.duration);
    });
    tasks.observe({ type: 'longtask', buffered: false });
    const shifts = new PerformanceObserver((list) => {
      for (const e of list.getEntries() as (PerformanceEntry & {
        value: number;
        hadRecentInput: boolean;
      })[]) {
        if (!e.hadRecentInput) state.shift += e.value;
      }
    });
    shifts.observe({ type: 'layout-shift', buffered: false });
    state.stop = () => {
      running = false;
      tasks.disconnect();
      shifts.disconnect();
    };
    w.__probe = state;
  });
}

export async function stopProbe(page: Page): Promise<FrameStats> {
  const raw = await page.evaluate(() => {
    const p = (window as unknown as ProbeWindow).__probe!;
    p.stop();
    return { deltas: p.deltas, longTasks: p.longTasks, shift: p.shift };
  });
  const sorted = [...raw.deltas].sort((a, b) => a - b);
  const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] ?? 0;
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    frames: sorted.length,
    p50Ms: round(q(0.5)),
    p95Ms: round(q(0.95)),
    p99Ms: round(q(0.99)),
    maxMs: round(sorted.at(-1) ?? 0),
    longTasks: raw.longTasks.length,
    longTaskMs: round(raw.longTasks.reduce((a, b) => a + b, 0)),
    layoutShift: Math.round(raw.shift * 10_000) / 10_000,
  };
}
