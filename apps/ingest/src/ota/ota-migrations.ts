/**
 * Versioned migrations of the OTA store, one list per dialect, tracked in their own
 * `ota_schema_migrations` table so they never collide with the registry's. Append only.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const DEVICE_STATES = `'pending', 'offered', 'downloading', 'verifying', 'installing', 'rebooting', 'trial', 'succeeded', 'failed', 'rolled_back'`;
const ROLLOUT_STATUSES = `'running', 'paused', 'completed', 'aborted', 'cancelled'`;

export const SQLITE_OTA_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'ota',
    sql: `
      CREATE TABLE ota_release_keys (
        kid TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        jwk TEXT NOT NULL,
        name TEXT,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER,
        revoked_by TEXT
      );
      CREATE TABLE ota_release_keys_sent (
        device_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL
      );
      CREATE TABLE ota_firmware (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        component TEXT NOT NULL,
        version TEXT NOT NULL,
        hardware TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        min_version TEXT,
        manifest_created_at INTEGER NOT NULL,
        manifest TEXT NOT NULL,
        kid TEXT NOT NULL,
        uploaded_by TEXT NOT NULL,
        uploaded_at INTEGER NOT NULL,
        UNIQUE (component, version)
      );
      CREATE INDEX ota_firmware_by_time ON ota_firmware (uploaded_at, id);
      CREATE TABLE ota_rollouts (
        id TEXT PRIMARY KEY,
        firmware_id TEXT NOT NULL REFERENCES ota_firmware (id),
        component TEXT NOT NULL,
        version TEXT NOT NULL,
        target TEXT NOT NULL,
        plan TEXT NOT NULL,
        rollback_target TEXT,
        status TEXT NOT NULL CHECK (status IN (${ROLLOUT_STATUSES})),
        current_wave INTEGER NOT NULL,
        waves TEXT NOT NULL,
        reason TEXT,
        finished_at INTEGER,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        revision INTEGER NOT NULL
      );
      CREATE INDEX ota_rollouts_by_time ON ota_rollouts (created_at, id);
      CREATE INDEX ota_rollouts_by_status ON ota_rollouts (status);
      CREATE TABLE ota_rollout_devices (
        rollout_id TEXT NOT NULL REFERENCES ota_rollouts (id),
        device_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        wave INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN (${DEVICE_STATES})),
        reason TEXT,
        detail TEXT,
        version TEXT,
        offered_at INTEGER,
        updated_at INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (rollout_id, device_id),
        UNIQUE (rollout_id, position)
      );
      CREATE INDEX ota_rollout_devices_by_device ON ota_rollout_devices (device_id, state);
    `,
  },
];

export const POSTGRES_OTA_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'ota',
    sql: `
      CREATE TABLE ota_release_keys (
        kid TEXT COLLATE "C" PRIMARY KEY,
        alg TEXT NOT NULL,
        jwk JSONB NOT NULL,
        name TEXT,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT,
        revoked_by TEXT
      );
      CREATE TABLE ota_release_keys_sent (
        device_id TEXT COLLATE "C" PRIMARY KEY,
        version BIGINT NOT NULL
      );
      CREATE TABLE ota_firmware (
        -- Byte order, like SQLite, so both stores page alike.
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        component TEXT COLLATE "C" NOT NULL,
        version TEXT COLLATE "C" NOT NULL,
        hardware JSONB NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        min_version TEXT,
        manifest_created_at BIGINT NOT NULL,
        manifest TEXT NOT NULL,
        kid TEXT NOT NULL,
        uploaded_by TEXT NOT NULL,
        uploaded_at BIGINT NOT NULL,
        UNIQUE (component, version)
      );
      CREATE INDEX ota_firmware_by_time ON ota_firmware (uploaded_at, id);
      CREATE TABLE ota_rollouts (
        id TEXT COLLATE "C" PRIMARY KEY,
        firmware_id TEXT COLLATE "C" NOT NULL REFERENCES ota_firmware (id),
        component TEXT COLLATE "C" NOT NULL,
        version TEXT NOT NULL,
        target JSONB NOT NULL,
        plan JSONB NOT NULL,
        rollback_target TEXT,
        status TEXT NOT NULL CHECK (status IN (${ROLLOUT_STATUSES})),
        current_wave INTEGER NOT NULL,
        waves JSONB NOT NULL,
        reason TEXT,
        finished_at BIGINT,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        revision INTEGER NOT NULL
      );
      CREATE INDEX ota_rollouts_by_time ON ota_rollouts (created_at, id);
      CREATE INDEX ota_rollouts_by_status ON ota_rollouts (status);
      CREATE TABLE ota_rollout_devices (
        rollout_id TEXT COLLATE "C" NOT NULL REFERENCES ota_rollouts (id),
        device_id TEXT COLLATE "C" NOT NULL,
        position INTEGER NOT NULL,
        wave INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN (${DEVICE_STATES})),
        reason TEXT,
        detail TEXT,
        version TEXT,
        offered_at BIGINT,
        updated_at BIGINT NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (rollout_id, device_id),
        UNIQUE (rollout_id, position)
      );
      CREATE INDEX ota_rollout_devices_by_device ON ota_rollout_devices (device_id, state);
    `,
  },
];
