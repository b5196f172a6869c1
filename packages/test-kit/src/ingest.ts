import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, LOOPBACK } from './ports.js';
import { ManagedProcess, waitForHttp } from './process.js';
import {
  type PortServiceHandle,
  portServiceHandle,
  ServiceRunner,
  type StartOptions,
} from './service.js';

export interface IngestOptions extends StartOptions {
  /** Extra INGEST_* variables (e.g. INGEST_INFLUX_URL, INGEST_DATABASE_URL). */
  env?: Record<string, string>;
  /** Also listen for MQTT over TLS on a free port. */
  tls?: boolean;
  /** The admin API token; default a fresh one. Replicas of one cluster share theirs. */
  adminToken?: string;
}

export interface IngestHandle extends PortServiceHandle {
  /** The admin API token (INGEST_BOOTSTRAP_TOKEN). */
  readonly adminToken: string;
  /** INGEST_DATA_DIR; kept across restarts. */
  readonly dataDir: string;
  readonly mqttPort: number;
  readonly mqttUrl: string;
  readonly mqttsPort: number | undefined;
}

/** The repository root, from this file's place in packages/test-kit/dist. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const INGEST_MAIN = join(ROOT, 'apps/ingest/dist/main.js');

/**
 * The node flags the ingest ships with (`outpost.nodeFlags` in its package.json, also used by
 * `npm start` and the container image), so tests and benchmarks run it as users do.
 */
export function ingestNodeFlags(): string[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'apps/ingest/package.json'), 'utf8')) as {
    outpost?: { nodeFlags?: string[] };
  };
  return manifest.outpost?.nodeFlags ?? [];
}

/**
 * Runs the built ingest service (`apps/ingest/dist/main.js`) as a process on free loopback
 * ports with its own data dir, as a user deploys it. `restart()` keeps the data dir.
 */
export async function startIngest(options: IngestOptions = {}): Promise<IngestHandle> {
  if (!existsSync(INGEST_MAIN)) {
    throw new Error(`${INGEST_MAIN} not found: build it first (npm run build)`);
  }
  const adminToken = options.adminToken ?? `test-admin-${randomBytes(18).toString('base64url')}`;
  const mqttPort = await freePort();
  const mqttsPort = options.tls ? await freePort() : undefined;
  let dataDir = '';
  const runner = await ServiceRunner.start(
    {
      name: 'ingest',
      spawn: ({ port, dir, logPath }) => {
        dataDir = join(dir, 'data');
        return ManagedProcess.start({
          name: 'ingest',
          command: process.execPath,
          args: ['--enable-source-maps', ...ingestNodeFlags(), INGEST_MAIN],
          cwd: dir,
          logPath,
          env: {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? dir,
            INGEST_DATA_DIR: dataDir,
            INGEST_HOST: LOOPBACK,
            INGEST_HTTP_PORT: String(port),
            INGEST_MQTT_PORT: String(mqttPort),
            INGEST_MQTTS_PORT: String(mqttsPort ?? 0),
            INGEST_BOOTSTRAP_TOKEN: adminToken,
            INGEST_PUBLIC_URL: `http://${LOOPBACK}:${port}`,
            INGEST_LOG_LEVEL: 'info',
            ...options.env,
          },
        });
      },
      ready: (proc, { port, readyTimeoutMs }) =>
        waitForHttp(`http://${LOOPBACK}:${port}/readyz`, {
          process: proc,
          timeoutMs: readyTimeoutMs,
          what: 'ingest /readyz',
        }),
    },
    options,
  );
  const base = portServiceHandle(runner, () => `http://${LOOPBACK}:${runner.port}`);
  // defineProperties, not Object.assign: the base handle's getters must stay live.
  return Object.defineProperties(base, {
    adminToken: { value: adminToken, enumerable: true },
    dataDir: { value: dataDir, enumerable: true },
    mqttPort: { value: mqttPort, enumerable: true },
    mqttUrl: { value: `mqtt://${LOOPBACK}:${mqttPort}`, enumerable: true },
    mqttsPort: { value: mqttsPort, enumerable: true },
  }) as IngestHandle;
}
