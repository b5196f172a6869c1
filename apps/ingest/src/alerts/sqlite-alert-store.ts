import type Database from 'better-sqlite3';
import { type PrepareStatement, SqliteDatabase } from '../storage/sqlite-database.js';
import { SQLITE_ALERT_MIGRATIONS } from './alert-migrations.js';
import {
  ALERT_COLUMNS,
  ALERT_SELECT,
  ALERT_UPDATE,
  type AlertRow,
  alertFromRow,
  alertParams,
  type DeliveryRow,
  deliveryFromRow,
  type RuleRow,
  ruleFromRow,
  type StateRow,
  stateFromRow,
} from './alert-rows.js';
import type {
  AckOutcome,
  AlertFilter,
  AlertPage,
  AlertRecord,
  AlertStore,
  CommitResult,
  DeliveryFailure,
  DeliveryRecord,
  NewDelivery,
  StateCommit,
  StoredState,
} from './alert-store.js';
import type { RuleRecord } from './rule.js';

type Params = (string | number | null)[];

/**
 * The embedded alert store: its own SQLite file (`<data dir>/alerts.db`) in WAL mode, so
 * alert writes never wait on the registry's lock, and its schema evolves on its own.
 * Writes happen on transitions, acknowledgements and deliveries, not per reading: full
 * durability is affordable.
 */
export class SqliteAlertStore implements AlertStore {
  private readonly sqlite: SqliteDatabase;
  private readonly db: Database.Database;
  private readonly prep: PrepareStatement;

  constructor(path: string) {
    this.sqlite = new SqliteDatabase(path, { dirMode: 0o700 });
    this.db = this.sqlite.db;
    this.prep = this.sqlite.prepare;
  }

  async migrate(): Promise<void> {
    this.sqlite.migrate({
      table: 'alert_schema_migrations',
      migrations: SQLITE_ALERT_MIGRATIONS,
      transactions: 'one',
    });
  }

  async ping(): Promise<void> {
    this.sqlite.ping();
  }

  async close(): Promise<void> {
    this.sqlite.close();
  }

  async insertRule(rule: RuleRecord, webhookSecret: string): Promise<void> {
    this.prep(
      `INSERT INTO alert_rules (id, name, enabled, spec, webhook_secret, created_by, created_at, updated_at, deleted_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      rule.id,
      rule.name,
      rule.enabled ? 1 : 0,
      JSON.stringify(rule.spec),
      webhookSecret,
      rule.createdBy,
      rule.createdAt,
      rule.updatedAt,
      rule.deletedAt,
    );
  }

  async getRule(id: string): Promise<RuleRecord | null> {
    const row = this.prep<[string], RuleRow>('SELECT * FROM alert_rules WHERE id = ?').get(id);
    return row ? ruleFromRow(row) : null;
  }

  async listRules(): Promise<RuleRecord[]> {
    return this.prep<[], RuleRow>(
      'SELECT * FROM alert_rules WHERE deleted_at IS NULL ORDER BY created_at, id',
    )
      .all()
      .map(ruleFromRow);
  }

  async updateRule(rule: RuleRecord): Promise<boolean> {
    const r = this.prep(
      `UPDATE alert_rules SET name = ?, enabled = ?, spec = ?, updated_at = ?, deleted_at = ?
         WHERE id = ? AND deleted_at IS NULL`,
    ).run(
      rule.name,
      rule.enabled ? 1 : 0,
      JSON.stringify(rule.spec),
      rule.updatedAt,
      rule.deletedAt,
      rule.id,
    );
    return r.changes === 1;
  }

  async ruleSecret(id: string): Promise<string | null> {
    const row = this.prep<[string], { webhook_secret: string }>(
      'SELECT webhook_secret FROM alert_rules WHERE id = ?',
    ).get(id);
    return row?.webhook_secret ?? null;
  }

  async setRuleSecret(id: string, secret: string, now: number): Promise<boolean> {
    const r = this.prep(
      'UPDATE alert_rules SET webhook_secret = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL',
    ).run(secret, now, id);
    return r.changes === 1;
  }

  async getState(ruleId: string, device: string): Promise<StoredState | null> {
    const row = this.prep<[string, string], StateRow>(
      'SELECT rule_id, device, version, state FROM alert_states WHERE rule_id = ? AND device = ?',
    ).get(ruleId, device);
    return row ? stateFromRow(row) : null;
  }

  async stateVersion(ruleId: string, device: string): Promise<number> {
    const row = this.prep<[string, string], { version: number }>(
      'SELECT version FROM alert_states WHERE rule_id = ? AND device = ?',
    ).get(ruleId, device);
    return row?.version ?? 0;
  }

  async listActiveStates(): Promise<StoredState[]> {
    return this.prep<[], StateRow>(
      `SELECT s.rule_id, s.device, s.version, s.state FROM alert_states s
         JOIN alert_rules r ON r.id = s.rule_id
         WHERE s.phase <> 'ok' AND r.deleted_at IS NULL`,
    )
      .all()
      .map(stateFromRow);
  }

  async commit(c: StateCommit): Promise<CommitResult> {
    return (await this.commitMany([c]))[0]!;
  }

  async commitMany(changes: readonly StateCommit[]): Promise<CommitResult[]> {
    // A transaction inside a transaction is a savepoint (better-sqlite3): a refused change
    // rolls back alone; the batch is one commit, one fsync.
    const one = this.db.transaction((c: StateCommit): CommitResult => {
      const state = JSON.stringify(c.state);
      const changed =
        c.expectedVersion === 0
          ? this.prep(
              `INSERT INTO alert_states (rule_id, device, version, phase, state, updated_at)
               VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (rule_id, device) DO NOTHING`,
            ).run(c.ruleId, c.device, c.state.phase, state, c.now).changes
          : this.prep(
              `UPDATE alert_states SET version = version + 1, phase = ?, state = ?, updated_at = ?
               WHERE rule_id = ? AND device = ? AND version = ?`,
            ).run(c.state.phase, state, c.now, c.ruleId, c.device, c.expectedVersion).changes;
      if (changed !== 1) return { ok: false, conflict: 'state' };
      const upsert = this.prep(
        `INSERT INTO alerts (${ALERT_COLUMNS}) VALUES (${ALERT_COLUMNS.split(',')
          .map(() => '?')
          .join(', ')})
         ON CONFLICT (id) DO UPDATE SET ${ALERT_UPDATE}`,
      );
      for (const a of c.alerts) upsert.run(...alertParams(a));
      this.insertDeliveries(c.deliveries);
      return { ok: true, version: c.expectedVersion + 1 };
    });
    return this.db
      .transaction(() =>
        changes.map((c): CommitResult => {
          try {
            return one(c);
          } catch (err) {
            if (isOpenAlertConflict(err)) return { ok: false, conflict: 'open_alert' };
            throw err;
          }
        }),
      )
      .immediate();
  }

  async getAlert(id: string): Promise<AlertRecord | null> {
    const row = this.prep<[string], AlertRow>(`${ALERT_SELECT} WHERE a.id = ?`).get(id);
    return row ? alertFromRow(row) : null;
  }

  async listAlerts(f: AlertFilter): Promise<AlertPage> {
    const where: string[] = [];
    const params: Params = [];
    if (f.status && f.status.length > 0) {
      where.push(`a.status IN (${f.status.map(() => '?').join(', ')})`);
      params.push(...f.status);
    }
    if (f.ruleId) {
      where.push('a.rule_id = ?');
      params.push(f.ruleId);
    }
    if (f.device) {
      where.push('a.device = ?');
      params.push(f.device);
    }
    if (f.severity) {
      where.push('a.severity = ?');
      params.push(f.severity);
    }
    if (f.acknowledged !== undefined) {
      where.push(f.acknowledged ? 'a.acknowledged_at IS NOT NULL' : 'a.acknowledged_at IS NULL');
    }
    if (f.after) {
      where.push('(a.opened_at < ? OR (a.opened_at = ? AND a.id < ?))');
      params.push(f.after.openedAt, f.after.openedAt, f.after.id);
    }
    const rows = this.prep<Params, AlertRow>(
      `${ALERT_SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY a.opened_at DESC, a.id DESC LIMIT ?`,
    ).all(...params, f.limit + 1);
    const items = rows.slice(0, f.limit).map(alertFromRow);
    const last = items.at(-1);
    return {
      items,
      next: rows.length > f.limit && last ? { openedAt: last.openedAt, id: last.id } : null,
    };
  }

  async acknowledge(
    id: string,
    by: string,
    at: number,
    deliveries: readonly NewDelivery[],
  ): Promise<AckOutcome> {
    const outcome = this.db
      .transaction((): AckOutcome['outcome'] => {
        const r = this.prep(
          `UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?, updated_at = ?
             WHERE id = ? AND acknowledged_at IS NULL AND status IN ('pending', 'firing')`,
        ).run(at, by, at, id);
        if (r.changes === 1) {
          this.insertDeliveries(deliveries);
          return 'acknowledged';
        }
        const row = this.prep<[string], { status: string; acknowledged_at: number | null }>(
          'SELECT status, acknowledged_at FROM alerts WHERE id = ?',
        ).get(id);
        if (!row) return 'not_found';
        return row.acknowledged_at !== null ? 'already' : 'not_open';
      })
      .immediate();
    if (outcome === 'not_found') return { outcome };
    return { outcome, alert: (await this.getAlert(id))! };
  }

  async claimDeliveries(now: number, limit: number, leaseMs: number): Promise<DeliveryRecord[]> {
    return this.db
      .transaction(() => {
        const rows = this.prep<[number, number], DeliveryRow>(
          `SELECT d.* FROM alert_deliveries d
           WHERE d.state = 'queued' AND d.next_attempt_at <= ?
             AND NOT EXISTS (SELECT 1 FROM alert_deliveries e
               WHERE e.rule_id = d.rule_id AND e.device = d.device AND e.url = d.url
                 AND e.state = 'queued'
                 AND e.rowid < d.rowid)
           ORDER BY d.next_attempt_at, d.rowid LIMIT ?`,
        ).all(now, limit);
        const lease = this.prep(
          `UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ?
           WHERE id = ?`,
        );
        for (const r of rows) lease.run(now + leaseMs, now, r.id);
        return rows.map((r) =>
          deliveryFromRow({
            ...r,
            attempts: r.attempts + 1,
            next_attempt_at: now + leaseMs,
            updated_at: now,
          }),
        );
      })
      .immediate();
  }

  async deliverySucceeded(id: string, attempt: number, at: number, status: number): Promise<void> {
    this.prep(
      `UPDATE alert_deliveries SET state = 'delivered', delivered_at = ?, updated_at = ?,
           last_status = ?, last_error = NULL
         WHERE id = ? AND state = 'queued' AND attempts = ?`,
    ).run(at, at, status, id, attempt);
  }

  async deliveryFailed(id: string, attempt: number, f: DeliveryFailure): Promise<void> {
    this.prep(
      `UPDATE alert_deliveries SET
           state = CASE WHEN ? IS NULL THEN 'dead' ELSE 'queued' END,
           next_attempt_at = coalesce(?, next_attempt_at),
           dead_at = CASE WHEN ? IS NULL THEN ? ELSE NULL END,
           last_error = ?, last_status = ?, updated_at = ?
         WHERE id = ? AND state = 'queued' AND attempts = ?`,
    ).run(f.retryAt, f.retryAt, f.retryAt, f.at, f.error, f.status, f.at, id, attempt);
  }

  async getDelivery(id: string): Promise<DeliveryRecord | null> {
    const row = this.prep<[string], DeliveryRow>('SELECT * FROM alert_deliveries WHERE id = ?').get(
      id,
    );
    return row ? deliveryFromRow(row) : null;
  }

  async listDeadDeliveries(limit: number, afterId?: string): Promise<DeliveryRecord[]> {
    const after = afterId
      ? this.prep<[string], { dead_at: number }>(
          "SELECT dead_at FROM alert_deliveries WHERE id = ? AND state = 'dead'",
        ).get(afterId)
      : undefined;
    const rows = after
      ? this.prep<[number, number, string, number], DeliveryRow>(
          `SELECT * FROM alert_deliveries WHERE state = 'dead'
               AND (dead_at < ? OR (dead_at = ? AND id < ?))
             ORDER BY dead_at DESC, id DESC LIMIT ?`,
        ).all(after.dead_at, after.dead_at, afterId!, limit)
      : this.prep<[number], DeliveryRow>(
          `SELECT * FROM alert_deliveries WHERE state = 'dead'
             ORDER BY dead_at DESC, id DESC LIMIT ?`,
        ).all(limit);
    return rows.map(deliveryFromRow);
  }

  async retryDelivery(id: string, now: number): Promise<DeliveryRecord | null> {
    const r = this.prep(
      `UPDATE alert_deliveries SET state = 'queued', attempts = 0, next_attempt_at = ?,
           dead_at = NULL, updated_at = ?
         WHERE id = ? AND state = 'dead'`,
    ).run(now, now, id);
    return r.changes === 1 ? this.getDelivery(id) : null;
  }

  async pruneDeliveries(before: number): Promise<number> {
    return this.prep(
      "DELETE FROM alert_deliveries WHERE state = 'delivered' AND delivered_at < ?",
    ).run(before).changes;
  }

  async recordActivity(updates: readonly { device: string; at: number }[]): Promise<void> {
    const upsert = this.prep(
      `INSERT INTO alert_activity (device, seen_at) VALUES (?, ?)
       ON CONFLICT (device) DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)`,
    );
    this.db.transaction(() => {
      for (const u of updates) upsert.run(u.device, u.at);
    })();
  }

  async loadActivity(): Promise<Map<string, number>> {
    const rows = this.prep<[], { device: string; seen_at: number }>(
      'SELECT device, seen_at FROM alert_activity',
    ).all();
    return new Map(rows.map((r) => [r.device, r.seen_at]));
  }

  private insertDeliveries(deliveries: readonly NewDelivery[]): void {
    if (deliveries.length === 0) return;
    const insert = this.prep(
      `INSERT INTO alert_deliveries (id, alert_id, rule_id, device, event, url, body, state,
         attempts, next_attempt_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)`,
    );
    for (const d of deliveries) {
      insert.run(
        d.id,
        d.alertId,
        d.ruleId,
        d.device,
        d.event,
        d.url,
        d.body,
        d.createdAt,
        d.createdAt,
        d.createdAt,
      );
    }
  }
}

function isOpenAlertConflict(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return (
    e?.code === 'SQLITE_CONSTRAINT_UNIQUE' &&
    typeof e.message === 'string' &&
    e.message.includes('alerts.rule_id')
  );
}
