import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary } from './binaries.js';
import { freePort, LOOPBACK } from './ports.js';
import { ManagedProcess, waitForHttp } from './process.js';
import {
  type PortServiceHandle,
  portServiceHandle,
  ServiceRunner,
  type StartOptions,
} from './service.js';

export type InfluxDb1Options = StartOptions;

/** The body of an InfluxQL `/query` answer. */
export interface InfluxQueryResponse {
  results: {
    statement_id: number;
    error?: string;
    series?: {
      name: string;
      tags?: Record<string, string>;
      columns: string[];
      values: unknown[][];
    }[];
  }[];
  error?: string;
}

export type InfluxPrecision = 'ns' | 'u' | 'ms' | 's';

export interface InfluxDb1Handle extends PortServiceHandle {
  /** `http://127.0.0.1:<port>` (v1 API: `/write`, `/query`, `/ping`; no `/api/v2`). */
  readonly url: string;
  /** Runs InfluxQL; throws if the answer or any statement carries an error. */
  query(q: string, db?: string): Promise<InfluxQueryResponse>;
  createDatabase(name: string): Promise<void>;
  /** Writes line protocol through `/write?db=`. */
  write(db: string, lines: string, precision?: InfluxPrecision): Promise<void>;
}

/** An InfluxQL double-quoted identifier. */
function influxIdent(name: string): string {
  return `"${name.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** The influxd config: everything under `dir`, both listeners on 127.0.0.1. */
export function influxConfig(dir: string, httpPort: number, rpcPort: number): string {
  const str = (value: string): string => JSON.stringify(value);
  return [
    // Debian's build reads reporting-enabled, upstream reads reporting-disabled.
    'reporting-enabled = false',
    'reporting-disabled = true',
    // The backup/restore RPC listener defaults to :8088, which parallel instances would share.
    `bind-address = ${str(`${LOOPBACK}:${rpcPort}`)}`,
    '[meta]',
    `  dir = ${str(join(dir, 'meta'))}`,
    '  logging-enabled = false',
    '[data]',
    `  dir = ${str(join(dir, 'data'))}`,
    `  wal-dir = ${str(join(dir, 'wal'))}`,
    '  query-log-enabled = false',
    '[monitor]',
    '  store-enabled = false',
    '[http]',
    `  bind-address = ${str(`${LOOPBACK}:${httpPort}`)}`,
    '  pprof-enabled = false',
    '[logging]',
    '  suppress-logo = true',
    '',
  ].join('\n');
}

/** A throwaway InfluxDB 1.x (`influxd run -config`) on 127.0.0.1. */
export async function startInfluxDb1(options: InfluxDb1Options = {}): Promise<InfluxDb1Handle> {
  const binary = findBinary('influxd', options.lookup);
  const runner = await ServiceRunner.start(
    {
      name: 'influxdb1',
      async spawn({ port, dir, logPath }) {
        const configPath = join(dir, 'influxdb.conf');
        await writeFile(configPath, influxConfig(dir, port, await freePort()));
        return ManagedProcess.start({
          name: 'influxdb1',
          command: binary,
          args: ['run', '-config', configPath],
          cwd: dir,
          logPath,
        });
      },
      ready: (proc, { port, readyTimeoutMs }) =>
        waitForHttp(`http://${LOOPBACK}:${port}/ping`, {
          status: 204,
          timeoutMs: readyTimeoutMs,
          process: proc,
        }),
    },
    options,
  );
  const base = (): string => `http://${LOOPBACK}:${runner.port}`;
  const query = async (q: string, db?: string): Promise<InfluxQueryResponse> => {
    const form = new URLSearchParams({ q });
    if (db !== undefined) form.set('db', db);
    const res = await fetch(`${base()}/query`, { method: 'POST', body: form });
    const text = await res.text();
    let body: InfluxQueryResponse;
    try {
      body = JSON.parse(text) as InfluxQueryResponse;
    } catch {
      throw new Error(`influxdb1 query answered ${res.status}: ${text}`);
    }
    const error = body.error ?? body.results?.find((r) => r.error !== undefined)?.error;
    if (!res.ok || error !== undefined) {
      throw new Error(`influxdb1 query ${JSON.stringify(q)} failed (${res.status}): ${error}`);
    }
    return body;
  };
  return Object.assign(portServiceHandle(runner, base), {
    query,
    async createDatabase(name: string) {
      await query(`CREATE DATABASE ${influxIdent(name)}`);
    },
    async write(db: string, lines: string, precision: InfluxPrecision = 'ns') {
      const params = new URLSearchParams({ db, precision });
      const res = await fetch(`${base()}/write?${params}`, { method: 'POST', body: lines });
      const text = await res.text();
      if (res.status !== 204) throw new Error(`influxdb1 write answered ${res.status}: ${text}`);
    },
  });
}
