import { join } from 'node:path';
import { findBinary } from './binaries.js';
import { LOOPBACK } from './ports.js';
import { ManagedProcess, waitForHttp } from './process.js';
import {
  type PortServiceHandle,
  portServiceHandle,
  ServiceRunner,
  type StartOptions,
} from './service.js';

export interface VictoriaMetricsOptions extends StartOptions {
  /** Extra flags, e.g. `['-maxLabelsPerTimeseries=50']`. */
  args?: readonly string[];
}

/** One line of `/api/v1/export`. */
export interface ExportedSeries {
  metric: Record<string, string>;
  values: (number | null)[];
  /** Milliseconds since the epoch. */
  timestamps: number[];
}

/** Unix seconds (fractions allowed), as `/api/v1/export` takes them. */
export interface ExportRange {
  start?: number;
  end?: number;
}

// VictoriaMetrics accepts samples up to two days ahead by default.
const FUTURE_SECONDS = 2 * 24 * 3600;

export interface VictoriaMetricsHandle extends PortServiceHandle {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Makes everything written so far searchable (`POST /internal/force_flush`). */
  flush(): Promise<void>;
  /**
   * Raw samples of the series matching a selector, e.g. `{__name__=~"temp_.*"}`, from the
   * epoch to two days ahead unless a range is given.
   */
  exportSeries(match: string | readonly string[], range?: ExportRange): Promise<ExportedSeries[]>;
}

/** Parses the JSON-lines body of `/api/v1/export`. */
export function parseExport(body: string): ExportedSeries[] {
  return body
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ExportedSeries);
}

async function expectOk(res: Response, what: string): Promise<string> {
  const body = await res.text();
  if (!res.ok) throw new Error(`${what} answered ${res.status}: ${body}`);
  return body;
}

/**
 * A throwaway single-node VictoriaMetrics. Old timestamps are kept (`-retentionPeriod=100y`
 * — otherwise they are dropped silently with a 204), and written samples are visible to
 * queries at once (`-search.latencyOffset=0s`, no result cache).
 */
export async function startVictoriaMetrics(
  options: VictoriaMetricsOptions = {},
): Promise<VictoriaMetricsHandle> {
  const binary = findBinary('victoria-metrics', options.lookup);
  const runner = await ServiceRunner.start(
    {
      name: 'victoria-metrics',
      spawn: ({ port, dir, logPath }) =>
        ManagedProcess.start({
          name: 'victoria-metrics',
          command: binary,
          args: [
            `-httpListenAddr=${LOOPBACK}:${port}`,
            `-storageDataPath=${join(dir, 'data')}`,
            '-retentionPeriod=100y',
            '-search.latencyOffset=0s',
            '-search.disableCache',
            ...(options.args ?? []),
          ],
          cwd: dir,
          logPath,
        }),
      ready: (proc, { port, readyTimeoutMs }) =>
        waitForHttp(`http://${LOOPBACK}:${port}/health`, {
          timeoutMs: readyTimeoutMs,
          process: proc,
        }),
    },
    options,
  );
  const base = (): string => `http://${LOOPBACK}:${runner.port}`;
  return Object.assign(portServiceHandle(runner, base), {
    async flush() {
      const res = await fetch(`${base()}/internal/force_flush`, { method: 'POST' });
      await expectOk(res, 'force_flush');
    },
    async exportSeries(match: string | readonly string[], range: ExportRange = {}) {
      const query = new URLSearchParams();
      for (const m of typeof match === 'string' ? [match] : match) query.append('match[]', m);
      // Without an explicit end, 1.79 stops at the current whole second and misses samples
      // written within it.
      query.set('start', String(range.start ?? 0));
      query.set('end', String(range.end ?? Math.ceil(Date.now() / 1000) + FUTURE_SECONDS));
      const res = await fetch(`${base()}/api/v1/export?${query}`);
      return parseExport(await expectOk(res, 'export'));
    },
  });
}
