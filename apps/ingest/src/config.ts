import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_AUDIENCE } from '@outpost/protocol/claims';
import {
  ENROLLMENT_TOKEN_TTL_S,
  MAX_DEVICE_JWT_LIFETIME_S,
  MAX_FIRMWARE_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_RECORDS_PER_BATCH,
} from '@outpost/protocol/limits';
import { z } from 'zod';
import { ConfigInvalid } from './errors.js';

const port = z.coerce.number().int().min(0).max(65_535);
const positiveInt = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));
const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const REPLICA_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** apps/dashboard/dist, from apps/ingest/src or apps/ingest/dist. */
const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/dist', import.meta.url));

/**
 * Every INGEST_* variable, its default next to it. SURFACES.md fixes the names of the first
 * group; the rest are ours.
 */
const envSchema = z.object({
  INGEST_DATA_DIR: z.string().min(1).default('./data'),
  INGEST_HTTP_PORT: port.default(8080),
  INGEST_HOST: z.string().min(1).default('0.0.0.0'),
  INGEST_MQTT_PORT: port.default(1883),
  INGEST_MQTTS_PORT: port.default(8883),
  INGEST_BOOTSTRAP_TOKEN: optionalString.pipe(
    z.string().min(24, 'must be at least 24 characters').max(512).optional(),
  ),
  INGEST_INFLUX_URL: optionalString.pipe(z.url().optional()),
  INGEST_INFLUX_API: z.enum(['v1', 'v2']).default('v2'),
  INGEST_INFLUX_TOKEN: optionalString,
  INGEST_INFLUX_ORG: optionalString,
  INGEST_INFLUX_BUCKET: optionalString,
  INGEST_INFLUX_DATABASE: optionalString,
  INGEST_DATABASE_URL: optionalString.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
  ),
  INGEST_REDIS_URL: optionalString.pipe(
    z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// URL')
      .optional(),
  ),
  /**
   * This replica's name in logs, metrics and cluster messages; unique per running process.
   * Default: the host name and process id.
   */
  INGEST_REPLICA_ID: optionalString.pipe(
    z
      .string()
      .regex(REPLICA_ID, 'letters, digits, ".", "_" and "-", at most 64 characters')
      .optional(),
  ),
  INGEST_AUDIENCE: z.string().min(1).max(256).default(DEFAULT_AUDIENCE),
  INGEST_LOG_LEVEL: logLevel.default('info'),
  /** The built operator dashboard served at `/`; default: apps/dashboard/dist of this repository. */
  INGEST_DASHBOARD_DIR: optionalString,

  /** URL devices and the CLI use to reach this service; sent in the enrollment reply. */
  INGEST_PUBLIC_URL: optionalString.pipe(z.url().optional()),
  /** Host name devices use for MQTT; defaults to the public URL's host. */
  INGEST_MQTT_PUBLIC_HOST: optionalString,
  INGEST_ENROLLMENT_TTL_S: positiveInt.default(ENROLLMENT_TOKEN_TTL_S),
  INGEST_DEVICE_JWT_MAX_LIFETIME_S: positiveInt.default(MAX_DEVICE_JWT_LIFETIME_S),
  INGEST_MAX_MESSAGE_BYTES: positiveInt.default(MAX_MESSAGE_BYTES),
  INGEST_MAX_RECORDS: positiveInt.default(MAX_RECORDS_PER_BATCH),
  /** Failed API authentications allowed per source address per minute before 429. */
  INGEST_AUTH_FAILURES_PER_MINUTE: positiveInt.default(20),
  /** Largest accepted bulk import body. */
  INGEST_IMPORT_MAX_BYTES: positiveInt.default(16 * 1024 * 1024),
  INGEST_IMPORT_MAX_ROWS: positiveInt.default(100_000),
  /** PEM files for MQTT over TLS; unset = a self-signed certificate made in the data dir. */
  INGEST_MQTT_TLS_CERT: optionalString,
  INGEST_MQTT_TLS_KEY: optionalString,
  /** Refused messages per device per minute before its session is closed (PROTOCOL.md §9). */
  INGEST_MQTT_MAX_REFUSALS_PER_MINUTE: positiveInt.default(10),
  /** Client-id takeovers per minute before new connections of that id are refused for a while. */
  INGEST_MQTT_MAX_TAKEOVERS_PER_MINUTE: positiveInt.default(6),
  /** How often connectivity (online, last seen) is written to the registry. */
  INGEST_CONNECTIVITY_FLUSH_MS: positiveInt.default(1000),
  /** Largest backlog of accepted points awaiting storage before new batches are not acked. */
  INGEST_OUTBOX_MAX_POINTS: positiveInt.default(50_000_000),
  /** Group-commit window of the durable telemetry outbox. */
  INGEST_OUTBOX_GROUP_COMMIT_MS: z.coerce.number().int().min(0).max(100).default(2),
  /** Writes from the outbox to the telemetry store in flight at once. */
  INGEST_OUTBOX_WRITES_IN_FLIGHT: z.coerce.number().int().min(1).max(16).default(3),
  /**
   * With PostgreSQL: the directory of every replica's outbox file (`<replica id>.db`), shared
   * by the replicas so a survivor can drain the file of one that died. Default `<data dir>/outbox`.
   * Without PostgreSQL the outbox stays `<data dir>/telemetry-outbox.db`.
   */
  INGEST_OUTBOX_DIR: optionalString,
  /**
   * Firmware artifacts, content-addressed (`<sha256>`). Default `<data dir>/firmware`. In
   * cluster mode every replica must see the same directory (a shared volume): an artifact
   * uploaded through one replica is downloaded through any.
   */
  INGEST_FIRMWARE_DIR: optionalString,
  /** An outbox whose owner's lease expired this long ago is drained by a survivor. */
  INGEST_OUTBOX_ADOPT_AFTER_S: z.coerce.number().int().min(0).default(300),
  /** How often survivors look for outboxes to adopt. */
  INGEST_OUTBOX_ADOPT_SCAN_MS: positiveInt.min(100).default(30_000),
  /** Leases (rollouts, alert timers, outbox ownership) last this long unless renewed. */
  INGEST_LEASE_TTL_MS: positiveInt.min(300).max(600_000).default(15_000),

  /** Alert timers (`for`, `clearFor`, offline rules) and the webhook queue are checked this often. */
  INGEST_ALERT_TICK_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  /** Readings waiting for alert evaluation; beyond it the oldest of a rule and device are dropped. */
  INGEST_ALERT_QUEUE_MAX: positiveInt.default(100_000),
  /** Rule and device pairs evaluated at once; their changes are committed together. */
  INGEST_ALERT_CONCURRENCY: z.coerce.number().int().min(1).max(1024).default(64),
  /** How often rules and offline scopes are re-read (changes made by other replicas). */
  INGEST_ALERT_RULES_REFRESH_MS: positiveInt.default(10_000),
  /** How long a cached alert state is trusted before its version is checked in the store. */
  INGEST_ALERT_STATE_CACHE_MS: z.coerce.number().int().min(0).default(1000),
  INGEST_ALERT_MAX_RULES: positiveInt.default(1000),
  /** One webhook attempt's time limit. */
  INGEST_ALERT_WEBHOOK_TIMEOUT_MS: positiveInt.default(5000),
  /** Attempts before a webhook notification becomes a dead letter. */
  INGEST_ALERT_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(12),
  /** First retry delay; doubled per attempt, with jitter, up to the maximum. */
  INGEST_ALERT_WEBHOOK_BACKOFF_MS: positiveInt.default(1000),
  INGEST_ALERT_WEBHOOK_MAX_BACKOFF_MS: positiveInt.default(600_000),
  INGEST_ALERT_WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  /** Delivered notifications are kept this long (dead letters until retried). */
  INGEST_ALERT_DELIVERED_RETENTION_S: positiveInt.default(7 * 86_400),

  /** Largest firmware artifact accepted (bytes); uploads stream to disk, never to memory. */
  INGEST_FIRMWARE_MAX_BYTES: positiveInt.max(MAX_FIRMWARE_BYTES).default(256 * 1024 * 1024),
  /** Artifact download requests per device per minute before 429. */
  INGEST_FIRMWARE_DOWNLOADS_PER_MINUTE: positiveInt.default(60),
  /** A served artifact is hashed again when its file changed or its last check is older; 0 = every read. */
  INGEST_FIRMWARE_VERIFY_TTL_S: z.coerce.number().int().min(0).default(300),
  /** Running rollouts are evaluated this often (waves, soak, timeouts). */
  INGEST_OTA_TICK_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  /** Default time an offered device has to answer before it fails with `timeout`. */
  INGEST_OTA_OFFER_TIMEOUT_S: positiveInt.default(900),
  /** Default time an updating device may stay silent before it fails with `timeout`. */
  INGEST_OTA_UPDATE_TIMEOUT_S: positiveInt.default(3600),
  /** Most devices one rollout may target. */
  INGEST_OTA_MAX_TARGETS: positiveInt.default(100_000),
});

export type IngestConfig = Readonly<{
  dataDir: string;
  http: Readonly<{ host: string; port: number; publicUrl: string | undefined }>;
  mqtt: Readonly<{
    port: number;
    tlsPort: number;
    publicHost: string | undefined;
    tlsCertFile: string | undefined;
    tlsKeyFile: string | undefined;
    maxRefusalsPerMinute: number;
    maxTakeoversPerMinute: number;
    connectivityFlushMs: number;
  }>;
  outbox: Readonly<{
    maxPoints: number;
    groupCommitMs: number;
    writesInFlight: number;
    dir: string;
    adoptAfterMs: number;
    adoptScanMs: number;
  }>;
  leaseTtlMs: number;
  alerts: Readonly<{
    tickMs: number;
    queueMax: number;
    concurrency: number;
    rulesRefreshMs: number;
    stateCacheMs: number;
    maxRules: number;
    webhook: Readonly<{
      timeoutMs: number;
      maxAttempts: number;
      backoffMs: number;
      maxBackoffMs: number;
      concurrency: number;
      retentionMs: number;
    }>;
  }>;
  ota: Readonly<{
    firmwareDir: string;
    firmwareMaxBytes: number;
    downloadsPerMinute: number;
    verifyTtlMs: number;
    tickMs: number;
    offerTimeoutMs: number;
    updateTimeoutMs: number;
    maxTargets: number;
  }>;
  bootstrapToken: string | undefined;
  influx:
    | Readonly<{
        url: string;
        api: 'v1' | 'v2';
        token: string | undefined;
        org: string | undefined;
        bucket: string | undefined;
        database: string | undefined;
      }>
    | undefined;
  databaseUrl: string | undefined;
  /** Set: cluster mode (several replicas sharing Redis and PostgreSQL). */
  redisUrl: string | undefined;
  replicaId: string;
  audience: string;
  logLevel: z.infer<typeof logLevel>;
  dashboardDir: string;
  limits: Readonly<{
    enrollmentTtlS: number;
    deviceJwtMaxLifetimeS: number;
    maxMessageBytes: number;
    maxRecords: number;
    authFailuresPerMinute: number;
    importMaxBytes: number;
    importMaxRows: number;
  }>;
}>;

/** Where the default replica id comes from; injected so tests need not depend on the host. */
export interface ProcessIdentity {
  hostname: string;
  pid: number;
}

const thisProcess = (): ProcessIdentity => ({ hostname: hostname(), pid: process.pid });

/** Parses the environment once; lists every bad variable at once. */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  identity: ProcessIdentity = thisProcess(),
): IngestConfig {
  const picked = Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('INGEST_')));
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigInvalid(problems);
  }
  const e = parsed.data;
  const problems: string[] = [];
  if (e.INGEST_INFLUX_URL && e.INGEST_INFLUX_API === 'v2' && !e.INGEST_INFLUX_BUCKET) {
    problems.push('INGEST_INFLUX_BUCKET: required when INGEST_INFLUX_API=v2');
  }
  if (e.INGEST_INFLUX_URL && e.INGEST_INFLUX_API === 'v1' && !e.INGEST_INFLUX_DATABASE) {
    problems.push('INGEST_INFLUX_DATABASE: required when INGEST_INFLUX_API=v1');
  }
  // Replicas share the registry, alerts and rollouts: a SQLite file per replica would split
  // them, so cluster mode needs PostgreSQL.
  if (e.INGEST_REDIS_URL && !e.INGEST_DATABASE_URL) {
    problems.push(
      'INGEST_REDIS_URL: cluster mode needs a shared PostgreSQL registry; set INGEST_DATABASE_URL (postgres://…) too',
    );
  }
  if (Boolean(e.INGEST_MQTT_TLS_CERT) !== Boolean(e.INGEST_MQTT_TLS_KEY)) {
    problems.push('INGEST_MQTT_TLS_CERT / INGEST_MQTT_TLS_KEY: set both or neither');
  }
  if (problems.length > 0) throw new ConfigInvalid(problems);

  return deepFreeze({
    dataDir: resolve(e.INGEST_DATA_DIR),
    http: { host: e.INGEST_HOST, port: e.INGEST_HTTP_PORT, publicUrl: e.INGEST_PUBLIC_URL },
    mqtt: {
      port: e.INGEST_MQTT_PORT,
      tlsPort: e.INGEST_MQTTS_PORT,
      publicHost: e.INGEST_MQTT_PUBLIC_HOST,
      tlsCertFile: e.INGEST_MQTT_TLS_CERT,
      tlsKeyFile: e.INGEST_MQTT_TLS_KEY,
      maxRefusalsPerMinute: e.INGEST_MQTT_MAX_REFUSALS_PER_MINUTE,
      maxTakeoversPerMinute: e.INGEST_MQTT_MAX_TAKEOVERS_PER_MINUTE,
      connectivityFlushMs: e.INGEST_CONNECTIVITY_FLUSH_MS,
    },
    outbox: {
      maxPoints: e.INGEST_OUTBOX_MAX_POINTS,
      groupCommitMs: e.INGEST_OUTBOX_GROUP_COMMIT_MS,
      writesInFlight: e.INGEST_OUTBOX_WRITES_IN_FLIGHT,
      dir: resolve(e.INGEST_OUTBOX_DIR ?? join(e.INGEST_DATA_DIR, 'outbox')),
      adoptAfterMs: e.INGEST_OUTBOX_ADOPT_AFTER_S * 1000,
      adoptScanMs: e.INGEST_OUTBOX_ADOPT_SCAN_MS,
    },
    leaseTtlMs: e.INGEST_LEASE_TTL_MS,
    alerts: {
      tickMs: e.INGEST_ALERT_TICK_MS,
      queueMax: e.INGEST_ALERT_QUEUE_MAX,
      concurrency: e.INGEST_ALERT_CONCURRENCY,
      rulesRefreshMs: e.INGEST_ALERT_RULES_REFRESH_MS,
      stateCacheMs: e.INGEST_ALERT_STATE_CACHE_MS,
      maxRules: e.INGEST_ALERT_MAX_RULES,
      webhook: {
        timeoutMs: e.INGEST_ALERT_WEBHOOK_TIMEOUT_MS,
        maxAttempts: e.INGEST_ALERT_WEBHOOK_MAX_ATTEMPTS,
        backoffMs: e.INGEST_ALERT_WEBHOOK_BACKOFF_MS,
        maxBackoffMs: e.INGEST_ALERT_WEBHOOK_MAX_BACKOFF_MS,
        concurrency: e.INGEST_ALERT_WEBHOOK_CONCURRENCY,
        retentionMs: e.INGEST_ALERT_DELIVERED_RETENTION_S * 1000,
      },
    },
    ota: {
      firmwareDir: resolve(e.INGEST_FIRMWARE_DIR ?? join(e.INGEST_DATA_DIR, 'firmware')),
      firmwareMaxBytes: e.INGEST_FIRMWARE_MAX_BYTES,
      downloadsPerMinute: e.INGEST_FIRMWARE_DOWNLOADS_PER_MINUTE,
      verifyTtlMs: e.INGEST_FIRMWARE_VERIFY_TTL_S * 1000,
      tickMs: e.INGEST_OTA_TICK_MS,
      offerTimeoutMs: e.INGEST_OTA_OFFER_TIMEOUT_S * 1000,
      updateTimeoutMs: e.INGEST_OTA_UPDATE_TIMEOUT_S * 1000,
      maxTargets: e.INGEST_OTA_MAX_TARGETS,
    },
    bootstrapToken: e.INGEST_BOOTSTRAP_TOKEN,
    influx: e.INGEST_INFLUX_URL
      ? {
          url: e.INGEST_INFLUX_URL,
          api: e.INGEST_INFLUX_API,
          token: e.INGEST_INFLUX_TOKEN,
          org: e.INGEST_INFLUX_ORG,
          bucket: e.INGEST_INFLUX_BUCKET,
          database: e.INGEST_INFLUX_DATABASE,
        }
      : undefined,
    databaseUrl: e.INGEST_DATABASE_URL,
    redisUrl: e.INGEST_REDIS_URL,
    replicaId: e.INGEST_REPLICA_ID ?? defaultReplicaId(identity),
    audience: e.INGEST_AUDIENCE,
    logLevel: e.INGEST_LOG_LEVEL,
    dashboardDir: resolve(e.INGEST_DASHBOARD_DIR ?? DEFAULT_DASHBOARD_DIR),
    limits: {
      enrollmentTtlS: e.INGEST_ENROLLMENT_TTL_S,
      deviceJwtMaxLifetimeS: e.INGEST_DEVICE_JWT_MAX_LIFETIME_S,
      maxMessageBytes: e.INGEST_MAX_MESSAGE_BYTES,
      maxRecords: e.INGEST_MAX_RECORDS,
      authFailuresPerMinute: e.INGEST_AUTH_FAILURES_PER_MINUTE,
      importMaxBytes: e.INGEST_IMPORT_MAX_BYTES,
      importMaxRows: e.INGEST_IMPORT_MAX_ROWS,
    },
  });
}

/** The configuration as it may be logged: secrets and URL credentials redacted. */
export function redactedConfig(config: IngestConfig): Record<string, unknown> {
  // The user part may be empty (`redis://:password@host`).
  const redactUrl = (url: string | undefined) =>
    url?.replace(/\/\/([^:/@]*):([^@/]+)@/, '//$1:[redacted]@');
  return {
    ...config,
    bootstrapToken: config.bootstrapToken ? '[redacted]' : undefined,
    databaseUrl: redactUrl(config.databaseUrl),
    redisUrl: redactUrl(config.redisUrl),
    influx: config.influx
      ? { ...config.influx, token: config.influx.token ? '[redacted]' : undefined }
      : undefined,
  };
}

/** `<host>-<pid>`, cut and cleaned to fit the replica id pattern. */
export function defaultReplicaId(identity: ProcessIdentity): string {
  const host = identity.hostname.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 48) || 'ingest';
  return `${host}-${identity.pid}`;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
