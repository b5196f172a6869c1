/**
 * Versioned migrations of the alert store, one list per dialect, tracked in their own
 * `alert_schema_migrations` table so they never collide with the registry's. Append only.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_ALERT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'alerts',
    sql: `
      CREATE TABLE alert_rules (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        spec TEXT NOT NULL,
        webhook_secret TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deleted_at INTEGER
      );
      CREATE TABLE alert_states (
        rule_id TEXT NOT NULL,
        device TEXT NOT NULL,
        version INTEGER NOT NULL,
        phase TEXT NOT NULL CHECK (phase IN ('ok', 'pending', 'firing')),
        state TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (rule_id, device)
      );
      CREATE INDEX alert_states_active ON alert_states (phase) WHERE phase <> 'ok';
      CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        rule_id TEXT NOT NULL,
        device TEXT NOT NULL,
        metric TEXT,
        severity TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'firing', 'resolved', 'cancelled')),
        opened_at INTEGER NOT NULL,
        fired_at INTEGER,
        closed_at INTEGER,
        value REAL,
        peak REAL,
        paged INTEGER NOT NULL,
        quiet TEXT,
        flapping INTEGER NOT NULL,
        flaps INTEGER NOT NULL,
        summary TEXT NOT NULL,
        acknowledged_at INTEGER,
        acknowledged_by TEXT,
        updated_at INTEGER NOT NULL
      );
      -- At most one open alert per (rule, device), whichever process writes.
      CREATE UNIQUE INDEX alerts_one_open ON alerts (rule_id, device)
        WHERE status IN ('pending', 'firing');
      CREATE INDEX alerts_by_time ON alerts (opened_at, id);
      CREATE INDEX alerts_by_rule ON alerts (rule_id, status);
      CREATE INDEX alerts_by_device ON alerts (device, opened_at);
      CREATE TABLE alert_deliveries (
        id TEXT PRIMARY KEY,
        alert_id TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        device TEXT NOT NULL,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        last_status INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        delivered_at INTEGER,
        dead_at INTEGER
      );
      CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'queued';
      -- The notifications of one rule and device to one URL go out in order (rowid order).
      CREATE INDEX alert_deliveries_order ON alert_deliveries (rule_id, device, url)
        WHERE state = 'queued';
      CREATE INDEX alert_deliveries_dead ON alert_deliveries (dead_at, id) WHERE state = 'dead';
      CREATE INDEX alert_deliveries_done ON alert_deliveries (delivered_at) WHERE state = 'delivered';
      CREATE TABLE alert_activity (
        device TEXT PRIMARY KEY,
        seen_at INTEGER NOT NULL
      );
    `,
  },
];

export const POSTGRES_ALERT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'alerts',
    sql: `
      CREATE TABLE alert_rules (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        enabled BOOLEAN NOT NULL,
        spec JSONB NOT NULL,
        webhook_secret TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        deleted_at BIGINT
      );
      CREATE TABLE alert_states (
        rule_id TEXT COLLATE "C" NOT NULL,
        device TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        phase TEXT NOT NULL CHECK (phase IN ('ok', 'pending', 'firing')),
        state JSONB NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (rule_id, device)
      );
      CREATE INDEX alert_states_active ON alert_states (phase) WHERE phase <> 'ok';
      CREATE TABLE alerts (
        -- Byte order, like SQLite, so both stores page alike.
        id TEXT COLLATE "C" PRIMARY KEY,
        rule_id TEXT COLLATE "C" NOT NULL,
        device TEXT COLLATE "C" NOT NULL,
        metric TEXT,
        severity TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'firing', 'resolved', 'cancelled')),
        opened_at BIGINT NOT NULL,
        fired_at BIGINT,
        closed_at BIGINT,
        value DOUBLE PRECISION,
        peak DOUBLE PRECISION,
        paged BOOLEAN NOT NULL,
        quiet TEXT,
        flapping BOOLEAN NOT NULL,
        flaps INTEGER NOT NULL,
        summary TEXT NOT NULL,
        acknowledged_at BIGINT,
        acknowledged_by TEXT,
        updated_at BIGINT NOT NULL
      );
      -- At most one open alert per (rule, device), whichever replica writes.
      CREATE UNIQUE INDEX alerts_one_open ON alerts (rule_id, device)
        WHERE status IN ('pending', 'firing');
      CREATE INDEX alerts_by_time ON alerts (opened_at, id);
      CREATE INDEX alerts_by_rule ON alerts (rule_id, status);
      CREATE INDEX alerts_by_device ON alerts (device, opened_at);
      CREATE TABLE alert_deliveries (
        id TEXT COLLATE "C" PRIMARY KEY,
        -- Insertion order: the notifications of one rule and device to one URL go out in order.
        seq BIGSERIAL NOT NULL,
        alert_id TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        device TEXT NOT NULL,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        last_error TEXT,
        last_status INTEGER,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        delivered_at BIGINT,
        dead_at BIGINT
      );
      CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'queued';
      CREATE INDEX alert_deliveries_order ON alert_deliveries (rule_id, device, url, seq)
        WHERE state = 'queued';
      CREATE INDEX alert_deliveries_dead ON alert_deliveries (dead_at, id) WHERE state = 'dead';
      CREATE INDEX alert_deliveries_done ON alert_deliveries (delivered_at) WHERE state = 'delivered';
      CREATE TABLE alert_activity (
        device TEXT COLLATE "C" PRIMARY KEY,
        seen_at BIGINT NOT NULL
      );
    `,
  },
];
