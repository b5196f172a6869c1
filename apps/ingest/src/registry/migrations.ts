/**
 * Versioned schema migrations, one list per dialect. Append only: a released migration is
 * never edited; a change is a new version.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'registry',
    sql: `
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('device', 'gateway')),
        name TEXT,
        gateway TEXT,
        payload_signing TEXT NOT NULL DEFAULT 'required',
        status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
        revoked_at INTEGER,
        online INTEGER NOT NULL DEFAULT 0,
        last_seen INTEGER,
        disconnect_reason TEXT,
        reported_state TEXT,
        reported_at INTEGER,
        outbox_pending INTEGER NOT NULL DEFAULT 0,
        desired_config TEXT,
        desired_config_version INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX devices_gateway ON devices (gateway);
      CREATE TABLE device_tags (
        device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (device_id, key)
      );
      CREATE INDEX device_tags_kv ON device_tags (key, value);
      CREATE TABLE device_keys (
        kid TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        alg TEXT NOT NULL,
        jwk TEXT NOT NULL,
        added_at INTEGER NOT NULL
      );
      CREATE INDEX device_keys_device ON device_keys (device_id);
      CREATE TABLE enrollments (
        jti TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        gateway TEXT,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
      );
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        roles TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        last_used_at INTEGER
      );
      CREATE TABLE service_keys (
        kid TEXT PRIMARY KEY,
        private_jwk TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'connectivity_replica',
    // The replica that recorded a device online, so the devices of a process that died
    // without recording them offline can be found; indexed over online devices only.
    sql: `
      ALTER TABLE devices ADD COLUMN replica TEXT;
      CREATE INDEX devices_online_replica ON devices (replica) WHERE online = 1;
    `,
  },
];

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'registry',
    sql: `
      CREATE TABLE devices (
        -- Byte order, like SQLite, so paging by id is the same on both and uses the index.
        id TEXT COLLATE "C" PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('device', 'gateway')),
        name TEXT,
        gateway TEXT,
        payload_signing TEXT NOT NULL DEFAULT 'required',
        status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
        revoked_at BIGINT,
        online BOOLEAN NOT NULL DEFAULT FALSE,
        last_seen BIGINT,
        disconnect_reason TEXT,
        reported_state JSONB,
        reported_at BIGINT,
        outbox_pending BIGINT NOT NULL DEFAULT 0,
        desired_config JSONB,
        desired_config_version INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      );
      CREATE INDEX devices_gateway ON devices (gateway);
      CREATE TABLE device_tags (
        device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (device_id, key)
      );
      CREATE INDEX device_tags_kv ON device_tags (key, value);
      CREATE TABLE device_keys (
        kid TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        alg TEXT NOT NULL,
        jwk JSONB NOT NULL,
        added_at BIGINT NOT NULL
      );
      CREATE INDEX device_keys_device ON device_keys (device_id);
      CREATE TABLE enrollments (
        jti TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        gateway TEXT,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT
      );
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        roles JSONB NOT NULL,
        hash TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        last_used_at BIGINT
      );
      CREATE TABLE service_keys (
        kid TEXT PRIMARY KEY,
        private_jwk JSONB NOT NULL,
        created_at BIGINT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'connectivity_replica',
    sql: `
      ALTER TABLE devices ADD COLUMN replica TEXT;
      CREATE INDEX devices_online_replica ON devices (replica) WHERE online;
    `,
  },
];
