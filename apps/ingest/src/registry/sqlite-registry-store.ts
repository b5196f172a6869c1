import type Database from 'better-sqlite3';
import { SqliteDatabase } from '../storage/sqlite-database.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
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

type Params = (string | number | null)[];

/** The embedded registry: one SQLite file in WAL mode. */
export class SqliteRegistryStore implements RegistryStore {
  private readonly sqlite: SqliteDatabase;
  private readonly db: Database.Database;

  constructor(path: string) {
    this.sqlite = new SqliteDatabase(path);
    this.db = this.sqlite.db;
  }

  async migrate(): Promise<void> {
    this.sqlite.migrate({
      table: 'schema_migrations',
      migrations: SQLITE_MIGRATIONS,
      transactions: 'each',
    });
  }

  async ping(): Promise<void> {
    this.sqlite.ping();
  }

  async close(): Promise<void> {
    this.sqlite.close();
  }

  async insertDevices(devices: readonly NewDevice[], now: number): Promise<void> {
    const exists = this.db.prepare<[string], { id: string }>('SELECT id FROM devices WHERE id = ?');
    const insert = this.db.prepare(
      `INSERT INTO devices (id, kind, name, gateway, payload_signing, status, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`,
    );
    const insertTag = this.db.prepare(
      'INSERT INTO device_tags (device_id, key, value) VALUES (?, ?, ?)',
    );
    this.db
      .transaction(() => {
        const taken = devices.filter((d) => exists.get(d.id)).map((d) => d.id);
        if (taken.length > 0) throw new DeviceExists(taken);
        for (const d of devices) {
          insert.run(
            d.id,
            d.kind,
            d.name ?? null,
            d.gateway ?? null,
            d.policy?.payloadSigning ?? 'required',
            now,
            now,
          );
          for (const [k, v] of Object.entries(d.tags ?? {})) insertTag.run(d.id, k, v);
        }
      })
      .immediate();
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    return this.loadDevices('id = ?', [id])[0] ?? null;
  }

  async deviceByKid(kid: string): Promise<DeviceRecord | null> {
    return (
      this.loadDevices('id = (SELECT device_id FROM device_keys WHERE kid = ?)', [kid])[0] ?? null
    );
  }

  async countDevices(): Promise<number> {
    return this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM devices').get()!.n;
  }

  async listDevices(filter: DeviceFilter): Promise<DevicePage> {
    const where: string[] = [];
    const params: Params = [];
    if (filter.after !== undefined) {
      where.push('id > ?');
      params.push(filter.after);
    }
    if (filter.kind) {
      where.push('kind = ?');
      params.push(filter.kind);
    }
    if (filter.gateway) {
      where.push('gateway = ?');
      params.push(filter.gateway);
    }
    switch (filter.status) {
      case undefined:
        break;
      case 'online':
        where.push("status = 'active' AND online = 1");
        break;
      case 'offline':
        where.push("status <> 'revoked' AND online = 0");
        break;
      case 'buffering':
        where.push("status = 'active' AND online = 0 AND outbox_pending > 0");
        break;
      default:
        where.push('status = ?');
        params.push(filter.status);
    }
    if (filter.text) {
      where.push("(lower(id) LIKE ? ESCAPE '\\' OR lower(coalesce(name, '')) LIKE ? ESCAPE '\\')");
      const pattern = likePattern(filter.text.toLowerCase());
      params.push(pattern, pattern);
    }
    for (const [k, v] of Object.entries(filter.tags ?? {})) {
      where.push(
        'EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = devices.id AND t.key = ? AND t.value = ?)',
      );
      params.push(k, v);
    }
    const items = this.loadDevices(
      where.length > 0 ? where.join(' AND ') : '1 = 1',
      params,
      filter.limit + 1,
    );
    const more = items.length > filter.limit;
    if (more) items.pop();
    return { items, next: more ? (items.at(-1)?.id ?? null) : null };
  }

  async updateDevice(id: string, patch: DevicePatch, now: number): Promise<DeviceRecord | null> {
    const run = this.db.transaction(() => {
      const row = this.db.prepare('SELECT id FROM devices WHERE id = ?').get(id);
      if (!row) return false;
      const sets: string[] = ['updated_at = ?'];
      const params: Params = [now];
      if (patch.name !== undefined) {
        sets.push('name = ?');
        params.push(patch.name);
      }
      if (patch.policy !== undefined) {
        sets.push('payload_signing = ?');
        params.push(patch.policy.payloadSigning);
      }
      if (patch.desiredConfig !== undefined) {
        sets.push('desired_config = ?', 'desired_config_version = desired_config_version + 1');
        params.push(JSON.stringify(patch.desiredConfig));
      }
      this.db.prepare(`UPDATE devices SET ${sets.join(', ')} WHERE id = ?`).run(...params, id);
      if (patch.tags !== undefined) {
        this.db.prepare('DELETE FROM device_tags WHERE device_id = ?').run(id);
        const insertTag = this.db.prepare(
          'INSERT INTO device_tags (device_id, key, value) VALUES (?, ?, ?)',
        );
        for (const [k, v] of Object.entries(patch.tags)) insertTag.run(id, k, v);
      }
      return true;
    });
    return run.immediate() ? this.getDevice(id) : null;
  }

  async revokeDevice(id: string, now: number): Promise<DeviceRecord | null> {
    this.db
      .prepare(
        `UPDATE devices SET status = 'revoked', revoked_at = coalesce(revoked_at, ?), online = 0,
           disconnect_reason = CASE WHEN online = 1 THEN 'revoked' ELSE disconnect_reason END,
           updated_at = ?
         WHERE id = ?`,
      )
      .run(now, now, id);
    return this.getDevice(id);
  }

  async childrenOf(gatewayId: string): Promise<string[]> {
    return this.db
      .prepare<[string], { id: string }>('SELECT id FROM devices WHERE gateway = ? ORDER BY id')
      .all(gatewayId)
      .map((r) => r.id);
  }

  async recordConnectivity(updates: readonly ConnectivityUpdate[]): Promise<void> {
    const stmt = this.db.prepare(
      `UPDATE devices SET online = ?, last_seen = max(coalesce(last_seen, 0), ?),
         disconnect_reason = ?, replica = ? WHERE id = ?`,
    );
    this.db.transaction(() => {
      for (const u of updates) {
        stmt.run(u.online ? 1 : 0, u.lastSeen, u.disconnectReason, u.replica, u.deviceId);
      }
    })();
  }

  async markReplicaOffline(replica: string | null, reason: string): Promise<MarkedOffline[]> {
    const rows = this.db
      .prepare<(string | null)[], { id: string; last_seen: number | null }>(
        `UPDATE devices SET online = 0, disconnect_reason = ?, replica = NULL
         WHERE online = 1 ${replica === null ? '' : 'AND replica = ?'}
         RETURNING id, last_seen`,
      )
      .all(...(replica === null ? [reason] : [reason, replica]));
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
    this.db
      .prepare(
        'UPDATE devices SET reported_state = ?, reported_at = ?, outbox_pending = ? WHERE id = ?',
      )
      .run(JSON.stringify(state), now, outboxPending, deviceId);
  }

  async insertEnrollment(e: EnrollmentRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO enrollments (jti, device_id, kind, gateway, created_by, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(e.jti, e.deviceId, e.kind, e.gateway, e.createdBy, e.createdAt, e.expiresAt);
  }

  async getEnrollment(jti: string): Promise<(EnrollmentRecord & { usedAt: number | null }) | null> {
    const row = this.db
      .prepare<
        [string],
        {
          jti: string;
          device_id: string;
          kind: 'device' | 'gateway';
          gateway: string | null;
          created_by: string;
          created_at: number;
          expires_at: number;
          used_at: number | null;
        }
      >('SELECT * FROM enrollments WHERE jti = ?')
      .get(jti);
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
    const run = this.db.transaction((): EnrollmentOutcome => {
      const e = this.db
        .prepare<[string], { device_id: string; expires_at: number; used_at: number | null }>(
          'SELECT device_id, expires_at, used_at FROM enrollments WHERE jti = ?',
        )
        .get(jti);
      if (!e) return { ok: false, reason: 'unknown' };
      if (e.used_at !== null) return { ok: false, reason: 'used' };
      if (e.expires_at <= now) return { ok: false, reason: 'expired' };
      const device = this.db
        .prepare<[string], { status: string }>('SELECT status FROM devices WHERE id = ?')
        .get(e.device_id);
      if (!device) return { ok: false, reason: 'unknown' };
      if (device.status === 'revoked') return { ok: false, reason: 'revoked' };
      const holder = this.db
        .prepare<[string], { device_id: string }>('SELECT device_id FROM device_keys WHERE kid = ?')
        .get(key.kid);
      if (holder) return { ok: false, reason: 'key_in_use' };
      this.db.prepare('UPDATE enrollments SET used_at = ? WHERE jti = ?').run(now, jti);
      this.db
        .prepare(
          'INSERT INTO device_keys (kid, device_id, alg, jwk, added_at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(key.kid, e.device_id, key.alg, JSON.stringify(key.jwk), key.addedAt);
      this.db
        .prepare("UPDATE devices SET status = 'active', updated_at = ? WHERE id = ?")
        .run(now, e.device_id);
      return { ok: true, device: this.loadDevices('id = ?', [e.device_id])[0]! };
    });
    return run.immediate();
  }

  async insertApiToken(t: ApiTokenRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO api_tokens (id, name, roles, hash, created_by, created_at, expires_at, revoked_at, last_used_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, roles = excluded.roles, revoked_at = NULL`,
      )
      .run(
        t.id,
        t.name,
        JSON.stringify(t.roles),
        t.hash,
        t.createdBy,
        t.createdAt,
        t.expiresAt,
        t.revokedAt,
        t.lastUsedAt,
      );
  }

  async getApiToken(id: string): Promise<ApiTokenRecord | null> {
    const row = this.db
      .prepare<[string], TokenRow>('SELECT * FROM api_tokens WHERE id = ?')
      .get(id);
    return row ? tokenFromRow(row) : null;
  }

  async listApiTokens(): Promise<ApiTokenRecord[]> {
    return this.db
      .prepare<[], TokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id')
      .all()
      .map(tokenFromRow);
  }

  async revokeApiToken(id: string, now: number): Promise<ApiTokenRecord | null> {
    this.db
      .prepare('UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?')
      .run(now, id);
    return this.getApiToken(id);
  }

  async touchApiToken(id: string, now: number): Promise<void> {
    this.db
      .prepare(
        'UPDATE api_tokens SET last_used_at = ? WHERE id = ? AND coalesce(last_used_at, 0) < ?',
      )
      .run(now, id, now - 60_000);
  }

  async ensureServiceKey(key: ServiceKeyRecord): Promise<ServiceKeyRecord[]> {
    this.db
      .prepare(
        `INSERT INTO service_keys (kid, private_jwk, created_at)
         SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM service_keys)`,
      )
      .run(key.kid, JSON.stringify(key.privateJwk), key.createdAt);
    return this.db
      .prepare<[], { kid: string; private_jwk: string; created_at: number }>(
        'SELECT * FROM service_keys ORDER BY created_at, kid',
      )
      .all()
      .map((r) => ({
        kid: r.kid,
        privateJwk: JSON.parse(r.private_jwk) as Record<string, unknown>,
        createdAt: r.created_at,
      }));
  }

  private loadDevices(where: string, params: Params, limit = 1_000_000): DeviceRecord[] {
    const rows = this.db
      .prepare<Params, DeviceRow>(`SELECT * FROM devices WHERE ${where} ORDER BY id LIMIT ?`)
      .all(...params, limit);
    if (rows.length === 0) return [];
    const ids = JSON.stringify(rows.map((r) => r.id));
    const tags = this.db
      .prepare<[string], TagRow>(
        'SELECT device_id, key, value FROM device_tags WHERE device_id IN (SELECT value FROM json_each(?))',
      )
      .all(ids);
    const keys = this.db
      .prepare<[string], KeyRow>(
        'SELECT device_id, kid, alg, jwk, added_at FROM device_keys WHERE device_id IN (SELECT value FROM json_each(?)) ORDER BY added_at',
      )
      .all(ids);
    return deviceFromRows(rows, tags, keys);
  }
}
