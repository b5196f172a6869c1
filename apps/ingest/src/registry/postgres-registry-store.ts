import type pg from 'pg';
import {
  advisoryTransactionLock,
  isUniqueViolation,
  PostgresDatabase,
} from '../storage/postgres-database.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';
import {
  type ApiTokenRecord,
  type ConnectivityUpdate,
  DeviceExists,
  type DeviceFilter,
  type DevicePage,
  type DevicePatch,
  type DeviceRecord,
  type EnrollmentOutcome,
  type EnrollmentRecord,
  type MarkedOffline,
  type NewDevice,
  type PublicKeyRecord,
  type RegistryStore,
  type ServiceKeyRecord,
} from './registry-store.js';
import {
  type DeviceRow,
  deviceFromRows,
  type KeyRow,
  likePattern,
  type TagRow,
  type TokenRow,
  tokenFromRow,
} from './rows.js';

type Params = unknown[];
type Queryable = pg.Pool | pg.PoolClient;

// Advisory lock keys (per database): "out" followed by a purpose number.
const LOCK_MIGRATE = 0x6f7574_0001;
const LOCK_SERVICE_KEY = 0x6f7574_0002;

// Byte order, as SQLite compares text, so both stores list and page identically whatever
// the database's default collation is.
const BY_ID = 'ORDER BY id COLLATE "C"';

interface EnrollmentRow {
  jti: string;
  device_id: string;
  kind: 'device' | 'gateway';
  gateway: string | null;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

interface ServiceKeyRow {
  kid: string;
  private_jwk: Record<string, unknown>;
  created_at: number;
}

/** The registry on a PostgreSQL server, for several ingest replicas sharing one registry. */
export class PostgresRegistryStore implements RegistryStore {
  private readonly db: PostgresDatabase;

  constructor(url: string, options: { poolSize?: number } = {}) {
    this.db = new PostgresDatabase(url, {
      poolSize: options.poolSize ?? 10,
      storeName: 'registry',
    });
  }

  async migrate(): Promise<void> {
    await this.db.migrate({
      table: 'schema_migrations',
      lockId: LOCK_MIGRATE,
      migrations: POSTGRES_MIGRATIONS,
    });
  }

  async ping(): Promise<void> {
    await this.db.ping();
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async insertDevices(devices: readonly NewDevice[], now: number): Promise<void> {
    if (devices.length === 0) return;
    const given = devices.map((d) => d.id);
    // Inserting in one global order makes overlapping concurrent imports queue on the first
    // shared id (the later one then fails cleanly) instead of deadlocking.
    const sorted = [...devices].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const ids = sorted.map((d) => d.id);
    const tags = sorted.flatMap((d) => Object.entries(d.tags ?? {}).map(([k, v]) => [d.id, k, v]));
    try {
      await this.db.transaction(async (tx) => {
        await this.throwIfAnyExists(tx, given);
        await tx.query(
          `INSERT INTO devices (id, kind, name, gateway, payload_signing, status, created_at, updated_at)
           SELECT id, kind, name, gateway, payload_signing, 'pending', $6, $6
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
             AS t (id, kind, name, gateway, payload_signing)`,
          [
            ids,
            sorted.map((d) => d.kind),
            sorted.map((d) => d.name ?? null),
            sorted.map((d) => d.gateway ?? null),
            sorted.map((d) => d.policy?.payloadSigning ?? 'required'),
            now,
          ],
        );
        await this.insertTags(tx, tags);
      });
    } catch (err) {
      // A concurrent insert committed one of these ids after our check.
      if (isUniqueViolation(err, 'devices_pkey')) {
        await this.throwIfAnyExists(this.db.pool, given);
      }
      throw err;
    }
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    return (await this.loadDevices(this.db.pool, 'id = $1', [id]))[0] ?? null;
  }

  async deviceByKid(kid: string): Promise<DeviceRecord | null> {
    const devices = await this.loadDevices(
      this.db.pool,
      'id = (SELECT device_id FROM device_keys WHERE kid = $1)',
      [kid],
    );
    return devices[0] ?? null;
  }

  async countDevices(): Promise<number> {
    const rows = await this.db.query<{ n: number }>('SELECT count(*) AS n FROM devices');
    return rows[0]!.n;
  }

  async listDevices(filter: DeviceFilter): Promise<DevicePage> {
    const where: string[] = [];
    const params: Params = [];
    const param = (value: unknown): string => `$${params.push(value)}`;
    if (filter.after !== undefined) where.push(`id COLLATE "C" > ${param(filter.after)}`);
    if (filter.kind) where.push(`kind = ${param(filter.kind)}`);
    if (filter.gateway) where.push(`gateway = ${param(filter.gateway)}`);
    switch (filter.status) {
      case undefined:
        break;
      case 'online':
        where.push("status = 'active' AND online");
        break;
      case 'offline':
        where.push("status <> 'revoked' AND NOT online");
        break;
      case 'buffering':
        where.push("status = 'active' AND NOT online AND outbox_pending > 0");
        break;
      default:
        where.push(`status = ${param(filter.status)}`);
    }
    if (filter.text) {
      const p = param(likePattern(filter.text.toLowerCase()));
      where.push(
        `(lower(id) LIKE ${p} ESCAPE '\\' OR lower(coalesce(name, '')) LIKE ${p} ESCAPE '\\')`,
      );
    }
    for (const [k, v] of Object.entries(filter.tags ?? {})) {
      where.push(
        `EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = devices.id AND t.key = ${param(k)} AND t.value = ${param(v)})`,
      );
    }
    const items = await this.loadDevices(
      this.db.pool,
      where.length > 0 ? where.join(' AND ') : 'TRUE',
      params,
      filter.limit + 1,
    );
    const more = items.length > filter.limit;
    if (more) items.pop();
    return { items, next: more ? (items.at(-1)?.id ?? null) : null };
  }

  async updateDevice(id: string, patch: DevicePatch, now: number): Promise<DeviceRecord | null> {
    return this.db.transaction(async (tx) => {
      const found = await tx.query('SELECT 1 FROM devices WHERE id = $1 FOR UPDATE', [id]);
      if (found.rowCount === 0) return null;
      const params: Params = [];
      const param = (value: unknown): string => `$${params.push(value)}`;
      const sets = [`updated_at = ${param(now)}`];
      if (patch.name !== undefined) sets.push(`name = ${param(patch.name)}`);
      if (patch.policy !== undefined) {
        sets.push(`payload_signing = ${param(patch.policy.payloadSigning)}`);
      }
      if (patch.desiredConfig !== undefined) {
        sets.push(
          `desired_config = ${param(JSON.stringify(patch.desiredConfig))}::jsonb`,
          'desired_config_version = desired_config_version + 1',
        );
      }
      await tx.query(`UPDATE devices SET ${sets.join(', ')} WHERE id = ${param(id)}`, params);
      if (patch.tags !== undefined) {
        await tx.query('DELETE FROM device_tags WHERE device_id = $1', [id]);
        await this.insertTags(
          tx,
          Object.entries(patch.tags).map(([k, v]) => [id, k, v]),
        );
      }
      return (await this.loadDevices(tx, 'id = $1', [id]))[0] ?? null;
    });
  }

  async revokeDevice(id: string, now: number): Promise<DeviceRecord | null> {
    await this.db.query(
      `UPDATE devices SET status = 'revoked', revoked_at = coalesce(revoked_at, $1), online = FALSE,
         disconnect_reason = CASE WHEN online THEN 'revoked' ELSE disconnect_reason END,
         updated_at = $1
       WHERE id = $2`,
      [now, id],
    );
    return this.getDevice(id);
  }

  async childrenOf(gatewayId: string): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      `SELECT id FROM devices WHERE gateway = $1 ${BY_ID}`,
      [gatewayId],
    );
    return rows.map((r) => r.id);
  }

  async recordConnectivity(updates: readonly ConnectivityUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    // One row per device, as if applied in order: the last state wins, last_seen the maximum.
    const byDevice = new Map<string, ConnectivityUpdate>();
    for (const u of updates) {
      const prev = byDevice.get(u.deviceId);
      byDevice.set(u.deviceId, prev ? { ...u, lastSeen: Math.max(prev.lastSeen, u.lastSeen) } : u);
    }
    const merged = [...byDevice.values()];
    // Rows are locked in id order so concurrent batches from several replicas cannot deadlock.
    await this.db.query(
      `WITH u AS (
         SELECT * FROM unnest($1::text[], $2::boolean[], $3::bigint[], $4::text[], $5::text[])
           AS u (id, online, last_seen, disconnect_reason, replica)
       ), locked AS (
         SELECT d.id FROM devices d JOIN u ON u.id = d.id ORDER BY d.id COLLATE "C" FOR UPDATE OF d
       )
       UPDATE devices d SET online = u.online,
         last_seen = GREATEST(coalesce(d.last_seen, 0), u.last_seen),
         disconnect_reason = u.disconnect_reason,
         replica = u.replica
       FROM u JOIN locked ON locked.id = u.id
       WHERE d.id = u.id`,
      [
        merged.map((u) => u.deviceId),
        merged.map((u) => u.online),
        merged.map((u) => u.lastSeen),
        merged.map((u) => u.disconnectReason),
        merged.map((u) => u.replica),
      ],
    );
  }

  async markReplicaOffline(replica: string | null, reason: string): Promise<MarkedOffline[]> {
    // Locked in id order, as recordConnectivity locks, so a survivor's batch recording some
    // of these devices online again cannot deadlock with this. A row changed meanwhile is
    // checked again once its lock is granted: one now online through another replica is
    // left alone.
    const ofReplica = (table: string) => (replica === null ? '' : `AND ${table}.replica = $2`);
    const rows = await this.db.query<{ id: string; last_seen: number | null }>(
      `WITH locked AS (
         SELECT id FROM devices WHERE online ${ofReplica('devices')}
         ORDER BY id COLLATE "C" FOR UPDATE
       )
       UPDATE devices d SET online = FALSE, disconnect_reason = $1, replica = NULL
       FROM locked
       WHERE d.id = locked.id AND d.online ${ofReplica('d')}
       RETURNING d.id, d.last_seen`,
      replica === null ? [reason] : [reason, replica],
    );
    return rows
      .map((r) => ({ deviceId: r.id, lastSeen: r.last_seen }))
      .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  }

  async recordReportedState(
    deviceId: string,
    state: unknown,
    outboxPending: number,
    now: number,
  ): Promise<void> {
    await this.db.query(
      'UPDATE devices SET reported_state = $1::jsonb, reported_at = $2, outbox_pending = $3 WHERE id = $4',
      [JSON.stringify(state), now, outboxPending, deviceId],
    );
  }

  async insertEnrollment(e: EnrollmentRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO enrollments (jti, device_id, kind, gateway, created_by, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [e.jti, e.deviceId, e.kind, e.gateway, e.createdBy, e.createdAt, e.expiresAt],
    );
  }

  async getEnrollment(jti: string): Promise<(EnrollmentRecord & { usedAt: number | null }) | null> {
    const row = (
      await this.db.query<EnrollmentRow>('SELECT * FROM enrollments WHERE jti = $1', [jti])
    )[0];
    if (!row) return null;
    return {
      jti: row.jti,
      deviceId: row.device_id,
      kind: row.kind,
      gateway: row.gateway,
      createdBy: row.created_by,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      usedAt: row.used_at,
    };
  }

  async completeEnrollment(
    jti: string,
    key: PublicKeyRecord,
    now: number,
  ): Promise<EnrollmentOutcome> {
    // Every refusal rolls back, so a refused attempt consumes nothing.
    return this.db.transaction(
      async (tx): Promise<EnrollmentOutcome> => {
        // Concurrent callers queue on the row lock; once the winner commits, the others
        // re-check `used_at IS NULL` against the new row and match nothing.
        const claimed = await tx.query<{ device_id: string }>(
          `UPDATE enrollments SET used_at = $1::bigint
           WHERE jti = $2 AND used_at IS NULL AND expires_at > $1::bigint
           RETURNING device_id`,
          [now, jti],
        );
        const deviceId = claimed.rows[0]?.device_id;
        if (deviceId === undefined) {
          const { rows } = await tx.query<{ used_at: number | null; expires_at: number }>(
            'SELECT used_at, expires_at FROM enrollments WHERE jti = $1',
            [jti],
          );
          const e = rows[0];
          if (!e) return { ok: false, reason: 'unknown' };
          if (e.used_at !== null) return { ok: false, reason: 'used' };
          return { ok: false, reason: e.expires_at <= now ? 'expired' : 'used' };
        }
        const device = await tx.query<{ status: string }>(
          'SELECT status FROM devices WHERE id = $1 FOR UPDATE',
          [deviceId],
        );
        const status = device.rows[0]?.status;
        if (status === undefined) return { ok: false, reason: 'unknown' };
        if (status === 'revoked') return { ok: false, reason: 'revoked' };
        // DO NOTHING waits for a concurrent insert of the same kid instead of failing the
        // transaction, and reports the conflict as no row.
        const inserted = await tx.query(
          `INSERT INTO device_keys (kid, device_id, alg, jwk, added_at)
           VALUES ($1, $2, $3, $4::jsonb, $5)
           ON CONFLICT (kid) DO NOTHING`,
          [key.kid, deviceId, key.alg, JSON.stringify(key.jwk), key.addedAt],
        );
        if (inserted.rowCount === 0) return { ok: false, reason: 'key_in_use' };
        await tx.query("UPDATE devices SET status = 'active', updated_at = $1 WHERE id = $2", [
          now,
          deviceId,
        ]);
        return { ok: true, device: (await this.loadDevices(tx, 'id = $1', [deviceId]))[0]! };
      },
      (outcome) => outcome.ok,
    );
  }

  async insertApiToken(t: ApiTokenRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO api_tokens (id, name, roles, hash, created_by, created_at, expires_at, revoked_at, last_used_at)
       VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, roles = excluded.roles, revoked_at = NULL`,
      [
        t.id,
        t.name,
        JSON.stringify(t.roles),
        t.hash,
        t.createdBy,
        t.createdAt,
        t.expiresAt,
        t.revokedAt,
        t.lastUsedAt,
      ],
    );
  }

  async getApiToken(id: string): Promise<ApiTokenRecord | null> {
    const row = (await this.db.query<TokenRow>('SELECT * FROM api_tokens WHERE id = $1', [id]))[0];
    return row ? tokenFromRow(row) : null;
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    const rows = await this.db.query<TokenRow>(
      'SELECT * FROM api_tokens ORDER BY created_at, id COLLATE "C"',
    );
    return rows.map(tokenFromRow);
  }

  async revokeApiToken(id: string, now: number): Promise<ApiTokenRecord | null> {
    await this.db.query(
      'UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2',
      [now, id],
    );
    return this.getApiToken(id);
  }

  async touchApiToken(id: string, now: number): Promise<void> {
    await this.db.query(
      'UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND coalesce(last_used_at, 0) < $3',
      [now, id, now - 60_000],
    );
  }

  async ensureServiceKey(key: ServiceKeyRecord): Promise<ServiceKeyRecord[]> {
    const rows = await this.db.transaction(async (tx) => {
      // Under the lock, NOT EXISTS sees a key committed by a replica that got there first.
      await advisoryTransactionLock(tx, LOCK_SERVICE_KEY);
      await tx.query(
        `INSERT INTO service_keys (kid, private_jwk, created_at)
         SELECT $1, $2::jsonb, $3 WHERE NOT EXISTS (SELECT 1 FROM service_keys)`,
        [key.kid, JSON.stringify(key.privateJwk), key.createdAt],
      );
      return (
        await tx.query<ServiceKeyRow>(
          'SELECT kid, private_jwk, created_at FROM service_keys ORDER BY created_at, kid COLLATE "C"',
        )
      ).rows;
    });
    return rows.map((r) => ({ kid: r.kid, privateJwk: r.private_jwk, createdAt: r.created_at }));
  }

  private async throwIfAnyExists(q: Queryable, ids: readonly string[]): Promise<void> {
    const { rows } = await q.query<{ id: string }>(
      'SELECT id FROM devices WHERE id = ANY($1::text[])',
      [ids],
    );
    if (rows.length === 0) return;
    const existing = new Set(rows.map((r) => r.id));
    throw new DeviceExists(ids.filter((id) => existing.has(id)));
  }

  private async insertTags(tx: pg.PoolClient, tags: readonly string[][]): Promise<void> {
    if (tags.length === 0) return;
    await tx.query(
      `INSERT INTO device_tags (device_id, key, value)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
      [tags.map((t) => t[0]), tags.map((t) => t[1]), tags.map((t) => t[2])],
    );
  }

  private async loadDevices(
    q: Queryable,
    where: string,
    params: Params,
    limit?: number,
  ): Promise<DeviceRecord[]> {
    const limitClause = limit === undefined ? '' : ` LIMIT $${params.length + 1}`;
    try {
      const { rows } = await q.query<DeviceRow>(
        `SELECT * FROM devices WHERE ${where} ${BY_ID}${limitClause}`,
        limit === undefined ? params : [...params, limit],
      );
      if (rows.length === 0) return [];
      const ids = rows.map((r) => r.id);
      // One after the other: a transaction's client runs one query at a time.
      const tags = await q.query<TagRow>(
        'SELECT device_id, key, value FROM device_tags WHERE device_id = ANY($1::text[])',
        [ids],
      );
      const keys = await q.query<KeyRow>(
        `SELECT device_id, kid, alg, jwk, added_at FROM device_keys
         WHERE device_id = ANY($1::text[]) ORDER BY added_at, kid COLLATE "C"`,
        [ids],
      );
      return deviceFromRows(rows, tags.rows, keys.rows);
    } catch (err) {
      throw this.db.mapError(err);
    }
  }
}
