import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type IngestHandle, type IngestOptions, startIngest } from './ingest.js';
import type { StopOptions } from './service.js';
import { startTcpBalancer, type TcpBalancer } from './tcp-balancer.js';
import { testRootDir } from './workdir.js';

export interface IngestClusterOptions extends Omit<IngestOptions, 'adminToken' | 'port'> {
  /** How many replicas; defaults to 3. */
  replicas?: number;
  /** `redis://…` shared by the replicas (INGEST_REDIS_URL). */
  redisUrl: string;
  /** `postgres://…` shared by the replicas (INGEST_DATABASE_URL). */
  databaseUrl: string;
}

export interface IngestCluster {
  /** Replica `i` runs with INGEST_REPLICA_ID `replica-<i>`. */
  readonly replicas: readonly IngestHandle[];
  /** Round-robin over the replicas' MQTT ports, skipping dead ones. */
  readonly mqtt: TcpBalancer;
  /** The admin API token every replica accepts. */
  readonly adminToken: string;
  /** Stops the balancer and every replica. Idempotent. */
  stop(options?: StopOptions): Promise<void>;
}

/**
 * Several built ingest processes as one cluster (cluster mode: shared Redis and PostgreSQL),
 * each with its own ports and data dir, behind a local TCP balancer for MQTT. As in
 * production, the replicas share one directory for firmware artifacts and outbox files
 * (INGEST_FIRMWARE_DIR, INGEST_OUTBOX_DIR). Each replica's handle keeps `kill9()` and
 * `restart()` (same ports, data dir and replica id).
 */
export async function startIngestCluster(options: IngestClusterOptions): Promise<IngestCluster> {
  const { replicas: count = 3, redisUrl, databaseUrl, env, ...rest } = options;
  const adminToken = `test-admin-${randomBytes(18).toString('base64url')}`;
  const replicas: IngestHandle[] = [];
  let mqtt: TcpBalancer | undefined;
  await mkdir(testRootDir(), { recursive: true });
  const shared = await mkdtemp(join(testRootDir(), 'ingest-cluster-'));
  const stopAll = async (stopOptions?: StopOptions) => {
    await mqtt?.stop();
    const results = await Promise.allSettled(replicas.map((r) => r.stop(stopOptions)));
    const failed = results.filter((r) => r.status === 'rejected');
    if (!stopOptions?.keepLogs) await rm(shared, { recursive: true, force: true });
    if (failed.length > 0) {
      throw new AggregateError(
        failed.map((f) => (f as PromiseRejectedResult).reason),
        'stopping replicas failed',
      );
    }
  };
  try {
    // One after another: the first runs the migrations and creates the service key.
    for (let i = 0; i < count; i++) {
      replicas.push(
        await startIngest({
          ...rest,
          adminToken,
          env: {
            INGEST_REDIS_URL: redisUrl,
            INGEST_DATABASE_URL: databaseUrl,
            INGEST_REPLICA_ID: `replica-${i}`,
            INGEST_FIRMWARE_DIR: join(shared, 'firmware'),
            INGEST_OUTBOX_DIR: join(shared, 'outbox'),
            ...env,
          },
        }),
      );
    }
    mqtt = await startTcpBalancer({ backends: replicas.map((r) => ({ port: r.mqttPort })) });
  } catch (err) {
    await stopAll({ keepLogs: true }).catch(() => undefined);
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    replicas,
    mqtt,
    adminToken,
    stop(stopOptions) {
      stopped ??= stopAll(stopOptions);
      return stopped;
    },
  };
}
