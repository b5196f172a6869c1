import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { isMissingRoute } from '../api/api-client.js';
import type { Series } from '../api/types.js';
import { useApp } from '../app-context.js';
import { formatValue } from '../format.js';
import { chooseWindow, type TimeRange } from './aggregation-window.js';
import { frames } from './frame-scheduler.js';
import {
  appendReading,
  emptySeries,
  fromHistory,
  type LiveSeries,
  plottable,
  trimBefore,
} from './live-series.js';
import type { ReadingsHub } from './readings-hub.js';

/** The window slides (and old points leave) this often, with or without new readings. */
const SLIDE_MS = 1000;

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/**
 * One metric of one device over the chosen range: the aggregated history from the query
 * API, then live readings from the stream. The plot's box has a fixed height in the
 * stylesheet, so nothing moves when data arrives; redraws are batched per frame.
 */
export function MetricChart(props: {
  device: string;
  metric: string;
  unit: string | undefined;
  range: TimeRange;
  hub: ReadingsHub;
  /** Changes when the history must be read again (the stream was lost and resumed). */
  resync: number;
}) {
  const { api } = useApp();
  const { device, metric, unit, range, hub, resync } = props;
  const box = useRef<HTMLDivElement>(null);
  const latest = useRef<HTMLSpanElement>(null);
  const plot = useRef<uPlot | null>(null);
  const series = useRef<LiveSeries>(emptySeries(chooseWindow(range.ms).everyMs));
  const [status, setStatus] = useState<'loading' | 'ready' | 'error'>('loading');
  const [error, setError] = useState<string | null>(null);
  const win = chooseWindow(range.ms);
  // The visible range, read by the plot's x scale on every draw.
  const xRange = useRef<[number, number]>([0, 1]);

  // The plot: made once, resized with its box.
  useEffect(() => {
    const el = box.current!;
    const axis = cssVar('--chart-axis', '#888');
    const grid = cssVar('--chart-grid', 'rgba(128,128,128,0.2)');
    const line = cssVar('--chart-line', '#4aa3ff');
    const u = new uPlot(
      {
        width: Math.max(100, el.clientWidth),
        height: Math.max(80, el.clientHeight),
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true, range: () => [xRange.current[0], xRange.current[1]] } },
        axes: [
          { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 56 },
        ],
        series: [
          {},
          {
            label: metric,
            stroke: line,
            width: 1.5,
            points: { show: false },
            spanGaps: false,
          },
        ],
      },
      [[], []],
      el,
    );
    plot.current = u;
    let pendingSize = false;
    const observer = new ResizeObserver(() => {
      if (pendingSize) return;
      pendingSize = true;
      requestAnimationFrame(() => {
        pendingSize = false;
        if (el.clientWidth > 0) u.setSize({ width: el.clientWidth, height: el.clientHeight });
      });
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [metric]);

  // Draws the series as it is now; called at most once per frame.
  const draw = useRef(() => {});
  draw.current = () => {
    const u = plot.current;
    if (!u) return;
    const now = Date.now();
    const s = series.current;
    trimBefore(s, now - range.ms - s.everyMs);
    xRange.current = [(now - range.ms) / 1000, now / 1000];
    u.setData([s.t, s.v]);
    const el = box.current;
    if (el) el.dataset.points = String(s.t.length);
    const last = s.v.length > 0 ? s.v[s.v.length - 1] : undefined;
    if (latest.current) latest.current.textContent = formatValue(last ?? null);
  };
  // One stable function per chart: the scheduler paces redraws per function.
  const redraw = useRef(() => draw.current());
  const schedule = useRef(() => frames.schedule(redraw.current));
  useEffect(() => () => frames.cancel(redraw.current), []);

  // History for the range; live readings are folded in from then on.
  useEffect(() => {
    let cancelled = false;
    const pending: [number, number][] = [];
    let loaded = false;
    setStatus('loading');
    const off = hub.on(metric, (timeMs, value) => {
      const v = plottable(value);
      if (v === null) return;
      if (!loaded) pending.push([timeMs, v]);
      else if (appendReading(series.current, timeMs, v)) schedule.current();
    });
    api
      .get<Series>(`/api/v1/devices/${encodeURIComponent(device)}/telemetry`, {
        metric,
        from: `-${range.id}`,
        to: 'now',
        every: win.every,
        fn: 'mean',
        limit: 10_000,
      })
      .then(
        (answer) => {
          if (cancelled) return;
          series.current = fromHistory(answer.points, win.everyMs);
          loaded = true;
          for (const [t, v] of pending) appendReading(series.current, t, v);
          setStatus('ready');
          setError(null);
          schedule.current();
        },
        (err: unknown) => {
          if (cancelled) return;
          series.current = emptySeries(win.everyMs);
          loaded = true;
          setStatus('error');
          setError(isMissingRoute(err) ? 'no history on this server' : (err as Error).message);
          schedule.current();
        },
      );
    const slide = setInterval(() => schedule.current(), Math.max(SLIDE_MS, win.everyMs / 4));
    return () => {
      cancelled = true;
      off();
      clearInterval(slide);
    };
  }, [api, device, metric, range.id, win.every, hub, resync]);

  const titleId = `chart-${metric}`;
  return (
    <figure class="chart" aria-labelledby={titleId}>
      <figcaption class="chart__head">
        <span id={titleId} class="chart__title">
          {metric}
          {unit ? <span class="muted"> ({unit})</span> : null}
        </span>
        <span class="chart__latest">
          <span class="visually-hidden">latest: </span>
          <span ref={latest}>–</span>
        </span>
      </figcaption>
      <div
        ref={box}
        class="chart__plot"
        role="img"
        aria-label={`${metric} over the last ${range.label}, ${win.every} means`}
        data-metric={metric}
        data-points="0"
      />
      <p class="chart__status muted">
        {status === 'loading'
          ? 'Loading history…'
          : status === 'error'
            ? `History: ${error}`
            : `${win.every} windows`}
      </p>
    </figure>
  );
}
