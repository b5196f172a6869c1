import type pg from 'pg';
import { isUniqueViolation, PostgresDatabase } from '../storage/postgres-database.js';
import { POSTGRES_ALERT_MIGRATIONS } from './alert-migrations.js';
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

type Queryable = pg.Pool | pg.PoolClient;

// Advisory lock key (per database): "out" followed by a purpose number; the registry uses 1, 2.
const LOCK_MIGRATE = 0x6f7574_0010;

/** The alert store on the PostgreSQL server the registry uses, shared by every replica. */
export class PostgresAlertStore implements AlertStore {
  private readonly db: PostgresDatabase;

  constructor(url: string, options: { poolSize?: number } = {}) {
    this.db = new PostgresDatabase(url, {
      poolSize: options.poolSize ?? 5,
      storeName: 'alert store',
    });
  }

  async migrate(): Promise<void> {
    await this.db.migrate({
      table: 'alert_schema_migrations',
      lockId: LOCK_MIGRATE,
      migrations: POSTGRES_ALERT_MIGRATIONS,
    });
  }

  async ping(): Promise<void> {
    await this.db.ping();
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async insertRule(rule: RuleRecord, webhookSecret: string): Promise<void> {
    await this.db.query(
      `INSERT INTO alert_rules (id, name, enabled, spec, webhook_secret, created_by, created_at, updated_at, deleted_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        rule.id,
        rule.name,
        rule.enabled,
        JSON.stringify(rule.spec),
        webhookSecret,
        rule.createdBy,
        rule.createdAt,
        rule.updatedAt,
        rule.deletedAt,
      ],
    );
  }

  async getRule(id: string): Promise<RuleRecord | null> {
    const [row] = await this.db.query<RuleRow>('SELECT * FROM alert_rules WHERE id = $1', [id]);
    return row ? ruleFromRow(row) : null;
  }

  async listRules(): Promise<RuleRecord[]> {
    const rows = await this.db.query<RuleRow>(
      'SELECT * FROM alert_rules WHERE deleted_at IS NULL ORDER BY created_at, id',
    );
    return rows.map(ruleFromRow);
  }

  async updateRule(rule: RuleRecord): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE alert_rules SET name = $1, enabled = $2, spec = $3, updated_at = $4, deleted_at = $5
       WHERE id = $6 AND deleted_at IS NULL RETURNING id`,
      [rule.name, rule.enabled, JSON.stringify(rule.spec), rule.updatedAt, rule.deletedAt, rule.id],
    );
    return rows.length === 1;
  }

  async ruleSecret(id: string): Promise<string | null> {
    const [row] = await this.db.query<{ webhook_secret: string }>(
      'SELECT webhook_secret FROM alert_rules WHERE id = $1',
      [id],
    );
    return row?.webhook_secret ?? null;
  }

  async setRuleSecret(id: string, secret: string, now: number): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE alert_rules SET webhook_secret = $1, updated_at = $2
       WHERE id = $3 AND deleted_at IS NULL RETURNING id`,
      [secret, now, id],
    );
    return rows.length === 1;
  }

  async getState(ruleId: string, device: string): Promise<StoredState | null> {
    const [row] = await this.db.query<StateRow>(
      'SELECT rule_id, device, version, state FROM alert_states WHERE rule_id = $1 AND device = $2',
      [ruleId, device],
    );
    return row ? stateFromRow(row) : null;
  }

  async stateVersion(ruleId: string, device: string): Promise<number> {
    const [row] = await this.db.query<{ version: number }>(
      'SELECT version FROM alert_states WHERE rule_id = $1 AND device = $2',
      [ruleId, device],
    );
    return row?.version ?? 0;
  }

  async listActiveStates(): Promise<StoredState[]> {
    const rows = await this.db.query<StateRow>(
      `SELECT s.rule_id, s.device, s.version, s.state FROM alert_states s
       JOIN alert_rules r ON r.id = s.rule_id
       WHERE s.phase <> 'ok' AND r.deleted_at IS NULL`,
    );
    return rows.map(stateFromRow);
  }

  async commit(c: StateCommit): Promise<CommitResult> {
    return (await this.commitMany([c]))[0]!;
  }

  async commitMany(changes: readonly StateCommit[]): Promise<CommitResult[]> {
    if (changes.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const results: CommitResult[] = [];
      for (const c of changes) {
        // Each change behind its own savepoint: a conflict undoes that change only.
        await tx.query('SAVEPOINT change');
        try {
          const result = await this.applyChange(tx, c);
          await tx.query(result.ok ? 'RELEASE SAVEPOINT change' : 'ROLLBACK TO SAVEPOINT change');
          results.push(result);
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
          await tx.query('ROLLBACK TO SAVEPOINT change');
          // alerts_one_open: another replica opened one first;
          // alert_states_pkey: two first commits of a new (rule, device) raced.
          results.push({
            ok: false,
            conflict: isUniqueViolation(err, 'alerts_one_open') ? 'open_alert' : 'state',
          });
        }
      }
      return results;
    });
  }

  private async applyChange(tx: pg.PoolClient, c: StateCommit): Promise<CommitResult> {
    const state = JSON.stringify(c.state);
    const written =
      c.expectedVersion === 0
        ? await tx.query(
            `INSERT INTO alert_states (rule_id, device, version, phase, state, updated_at)
             VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (rule_id, device) DO NOTHING`,
            [c.ruleId, c.device, c.state.phase, state, c.now],
          )
        : await tx.query(
            `UPDATE alert_states SET version = version + 1, phase = $1, state = $2, updated_at = $3
             WHERE rule_id = $4 AND device = $5 AND version = $6`,
            [c.state.phase, state, c.now, c.ruleId, c.device, c.expectedVersion],
          );
    if (written.rowCount !== 1) return { ok: false, conflict: 'state' };
    for (const a of c.alerts) {
      await tx.query(
        `INSERT INTO alerts (${ALERT_COLUMNS}) VALUES (${ALERT_COLUMNS.split(',')
          .map((_, i) => `$${i + 1}`)
          .join(', ')})
         ON CONFLICT (id) DO UPDATE SET ${ALERT_UPDATE}`,
        alertParams(a),
      );
    }
    await this.insertDeliveries(tx, c.deliveries);
    return { ok: true, version: c.expectedVersion + 1 };
  }

  async getAlert(id: string): Promise<AlertRecord | null> {
    const [row] = await this.db.query<AlertRow>(`${ALERT_SELECT} WHERE a.id = $1`, [id]);
    return row ? alertFromRow(row) : null;
  }

  async listAlerts(f: AlertFilter): Promise<AlertPage> {
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (f.status && f.status.length > 0) where.push(`a.status = ANY(${p([...f.status])}::text[])`);
    if (f.ruleId) where.push(`a.rule_id = ${p(f.ruleId)}`);
    if (f.device) where.push(`a.device = ${p(f.device)}`);
    if (f.severity) where.push(`a.severity = ${p(f.severity)}`);
    if (f.acknowledged !== undefined) {
      where.push(f.acknowledged ? 'a.acknowledged_at IS NOT NULL' : 'a.acknowledged_at IS NULL');
    }
    if (f.after) {
      const at = p(f.after.openedAt);
      where.push(`(a.opened_at < ${at} OR (a.opened_at = ${at} AND a.id < ${p(f.after.id)}))`);
    }
    const rows = await this.db.query<AlertRow>(
      `${ALERT_SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY a.opened_at DESC, a.id DESC LIMIT ${p(f.limit + 1)}`,
      params,
    );
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
    const outcome = await this.db.transaction(async (tx): Promise<AckOutcome['outcome']> => {
      const updated = await tx.query(
        `UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2, updated_at = $1
         WHERE id = $3 AND acknowledged_at IS NULL AND status IN ('pending', 'firing')`,
        [at, by, id],
      );
      if (updated.rowCount === 1) {
        await this.insertDeliveries(tx, deliveries);
        return 'acknowledged';
      }
      const { rows } = await tx.query<{ acknowledged_at: number | null }>(
        'SELECT acknowledged_at FROM alerts WHERE id = $1',
        [id],
      );
      if (rows.length === 0) return 'not_found';
      return rows[0]!.acknowledged_at !== null ? 'already' : 'not_open';
    });
    if (outcome === 'not_found') return { outcome };
    return { outcome, alert: (await this.getAlert(id))! };
  }

  async claimDeliveries(now: number, limit: number, leaseMs: number): Promise<DeliveryRecord[]> {
    // SKIP LOCKED: concurrent senders on several replicas take disjoint rows.
    const rows = await this.db.query<DeliveryRow & { seq: number }>(
      `UPDATE alert_deliveries SET attempts = attempts + 1, next_attempt_at = $2, updated_at = $1
       WHERE id IN (
         SELECT d.id FROM alert_deliveries d
         WHERE d.state = 'queued' AND d.next_attempt_at <= $1
           AND NOT EXISTS (SELECT 1 FROM alert_deliveries e
             WHERE e.rule_id = d.rule_id AND e.device = d.device AND e.url = d.url
               AND e.state = 'queued'
               AND e.seq < d.seq)
         ORDER BY d.next_attempt_at, d.seq LIMIT $3 FOR UPDATE SKIP LOCKED
       ) RETURNING *`,
      [now, now + leaseMs, limit],
    );
    return rows.sort((a, b) => Number(a.seq) - Number(b.seq)).map(deliveryFromRow);
  }

  async deliverySucceeded(id: string, attempt: number, at: number, status: number): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET state = 'delivered', delivered_at = $1, updated_at = $1,
         last_status = $2, last_error = NULL
       WHERE id = $3 AND state = 'queued' AND attempts = $4`,
      [at, status, id, attempt],
    );
  }

  async deliveryFailed(id: string, attempt: number, f: DeliveryFailure): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET
         state = CASE WHEN $1::bigint IS NULL THEN 'dead' ELSE 'queued' END,
         next_attempt_at = coalesce($1::bigint, next_attempt_at),
         dead_at = CASE WHEN $1::bigint IS NULL THEN $2::bigint ELSE NULL END,
         last_error = $3, last_status = $4, updated_at = $2
       WHERE id = $5 AND state = 'queued' AND attempts = $6`,
      [f.retryAt, f.at, f.error, f.status, id, attempt],
    );
  }

  async getDelivery(id: string): Promise<DeliveryRecord | null> {
    const [row] = await this.db.query<DeliveryRow>('SELECT * FROM alert_deliveries WHERE id = $1', [
      id,
    ]);
    return row ? deliveryFromRow(row) : null;
  }

  async listDeadDeliveries(limit: number, afterId?: string): Promise<DeliveryRecord[]> {
    const rows = afterId
      ? await this.db.query<DeliveryRow>(
          `SELECT d.* FROM alert_deliveries d,
             (SELECT dead_at FROM alert_deliveries WHERE id = $1 AND state = 'dead') c
           WHERE d.state = 'dead' AND (d.dead_at < c.dead_at OR (d.dead_at = c.dead_at AND d.id < $1))
           ORDER BY d.dead_at DESC, d.id DESC LIMIT $2`,
          [afterId, limit],
        )
      : await this.db.query<DeliveryRow>(
          `SELECT * FROM alert_deliveries WHERE state = 'dead'
           ORDER BY dead_at DESC, id DESC LIMIT $1`,
          [limit],
        );
    return rows.map(deliveryFromRow);
  }

  async retryDelivery(id: string, now: number): Promise<DeliveryRecord | null> {
    const [row] = await this.db.query<DeliveryRow>(
      `UPDATE alert_deliveries SET state = 'queued', attempts = 0, next_attempt_at = $1,
         dead_at = NULL, updated_at = $1
       WHERE id = $2 AND state = 'dead' RETURNING *`,
      [now, id],
    );
    return row ? deliveryFromRow(row) : null;
  }

  async pruneDeliveries(before: number): Promise<number> {
    const rows = await this.db.query(
      "DELETE FROM alert_deliveries WHERE state = 'delivered' AND delivered_at < $1 RETURNING id",
      [before],
    );
    return rows.length;
  }

  async recordActivity(updates: readonly { device: string; at: number }[]): Promise<void> {
    if (updates.length === 0) return;
    // One row per device (the latest), in one order, so concurrent flushes cannot deadlock.
    const latest = new Map<string, number>();
    for (const u of updates) latest.set(u.device, Math.max(latest.get(u.device) ?? u.at, u.at));
    const devices = [...latest.keys()].sort();
    await this.db.query(
      `INSERT INTO alert_activity (device, seen_at)
       SELECT * FROM unnest($1::text[], $2::bigint[])
       ON CONFLICT (device) DO UPDATE SET seen_at = GREATEST(alert_activity.seen_at, excluded.seen_at)`,
      [devices, devices.map((d) => latest.get(d)!)],
    );
  }

  async loadActivity(): Promise<Map<string, number>> {
    const rows = await this.db.query<{ device: string; seen_at: number }>(
      'SELECT device, seen_at FROM alert_activity',
    );
    return new Map(rows.map((r) => [r.device, r.seen_at]));
  }

  private async insertDeliveries(tx: Queryable, deliveries: readonly NewDelivery[]): Promise<void> {
    if (deliveries.length === 0) return;
    await tx.query(
      `INSERT INTO alert_deliveries (id, alert_id, rule_id, device, event, url, body, state,
         attempts, next_attempt_at, created_at, updated_at)
       SELECT id, alert_id, rule_id, device, event, url, body, 'queued', 0, t, t, t
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
         $7::text[], $8::bigint[]) AS x (id, alert_id, rule_id, device, event, url, body, t)`,
      [
        deliveries.map((d) => d.id),
        deliveries.map((d) => d.alertId),
        deliveries.map((d) => d.ruleId),
        deliveries.map((d) => d.device),
        deliveries.map((d) => d.event),
        deliveries.map((d) => d.url),
        deliveries.map((d) => d.body),
        deliveries.map((d) => d.createdAt),
      ],
    );
  }
}
