import type Database from 'better-sqlite3';
import { type PrepareStatement, SqliteDatabase } from '../storage/sqlite-database.js';
import { SQLITE_OTA_MIGRATIONS } from './ota-migrations.js';
import {
  ACTIVE_STATUSES,
  FINISHED_DEVICE_STATES,
  FIRMWARE_COLUMNS,
  type FirmwareRow,
  firmwareFromRow,
  firmwareParams,
  page,
  RELEASE_KEY_COLUMNS,
  type ReleaseKeyRow,
  ROLLOUT_COLUMNS,
  ROLLOUT_DEVICE_COLUMNS,
  type RolloutDeviceRow,
  type RolloutRow,
  releaseKeyFromRow,
  releaseKeyParams,
  rolloutChangeParams,
  rolloutDeviceFromRow,
  rolloutFromRow,
  rolloutParams,
} from './ota-rows.js';
import type {
  DeviceChange,
  FirmwareFilter,
  FirmwareRecord,
  NewRolloutDevice,
  OtaStore,
  Page,
  ReleaseKeyRecord,
  RevokeKeyOutcome,
  RolloutChange,
  RolloutDeviceRecord,
  RolloutFilter,
  RolloutRecord,
} from './ota-store.js';

type Param = string | number | null;

/** SQLite allows 32,766 parameters per statement; lists are sent in slices well below. */
const SLICE = 500;

function slices<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += SLICE) out.push(items.slice(i, i + SLICE));
  return out;
}

const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');
const quoted = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');

/**
 * The embedded OTA store: its own SQLite file (`<data dir>/ota.db`) in WAL mode, apart from
 * the registry, so rollout bookkeeping never waits on registry writes and the two schemas
 * evolve alone. Writes happen per device state change, not per message: full durability.
 */
export class SqliteOtaStore implements OtaStore {
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
      table: 'ota_schema_migrations',
      migrations: SQLITE_OTA_MIGRATIONS,
      transactions: 'one',
    });
  }

  async ping(): Promise<void> {
    this.sqlite.ping();
  }

  async close(): Promise<void> {
    this.sqlite.close();
  }

  async addReleaseKey(key: ReleaseKeyRecord) {
    return this.db
      .transaction(() => {
        const inserted = this.prep(
          `INSERT INTO ota_release_keys (${RELEASE_KEY_COLUMNS}) VALUES (${marks(8)})
             ON CONFLICT (kid) DO NOTHING`,
        ).run(...releaseKeyParams(key));
        const row = this.prep<[string], ReleaseKeyRow>(
          `SELECT ${RELEASE_KEY_COLUMNS} FROM ota_release_keys WHERE kid = ?`,
        ).get(key.kid)!;
        return { created: inserted.changes === 1, key: releaseKeyFromRow(row) };
      })
      .immediate();
  }

  async listReleaseKeys(): Promise<ReleaseKeyRecord[]> {
    return this.prep<[], ReleaseKeyRow>(
      `SELECT ${RELEASE_KEY_COLUMNS} FROM ota_release_keys ORDER BY created_at, kid`,
    )
      .all()
      .map(releaseKeyFromRow);
  }

  async revokeReleaseKey(kid: string, by: string, now: number): Promise<RevokeKeyOutcome> {
    return this.db
      .transaction((): RevokeKeyOutcome => {
        const row = this.prep<[string], ReleaseKeyRow>(
          `SELECT ${RELEASE_KEY_COLUMNS} FROM ota_release_keys WHERE kid = ?`,
        ).get(kid);
        if (!row) return { outcome: 'not_found' };
        if (row.revoked_at !== null) return { outcome: 'already', key: releaseKeyFromRow(row) };
        const active = this.prep<[], { n: number }>(
          'SELECT count(*) AS n FROM ota_release_keys WHERE revoked_at IS NULL',
        ).get()!.n;
        if (active <= 1) return { outcome: 'last_key' };
        this.prep('UPDATE ota_release_keys SET revoked_at = ?, revoked_by = ? WHERE kid = ?').run(
          now,
          by,
          kid,
        );
        return {
          outcome: 'revoked',
          key: releaseKeyFromRow({ ...row, revoked_at: now, revoked_by: by }),
        };
      })
      .immediate();
  }

  async releaseKeySetVersion(): Promise<number> {
    return this.prep<[], { v: number }>(
      'SELECT count(*) + count(revoked_at) AS v FROM ota_release_keys',
    ).get()!.v;
  }

  async releaseKeysSentTo(deviceId: string): Promise<number> {
    const row = this.prep<[string], { version: number }>(
      'SELECT version FROM ota_release_keys_sent WHERE device_id = ?',
    ).get(deviceId);
    return row?.version ?? 0;
  }

  async recordReleaseKeysSent(deviceIds: readonly string[], version: number): Promise<void> {
    const upsert = this.prep(
      `INSERT INTO ota_release_keys_sent (device_id, version) VALUES (?, ?)
         ON CONFLICT (device_id) DO UPDATE SET version = max(version, excluded.version)`,
    );
    this.db.transaction(() => {
      for (const id of deviceIds) upsert.run(id, version);
    })();
  }

  async insertFirmware(firmware: FirmwareRecord) {
    return this.db
      .transaction(() => {
        const existing = this.prep<[string, string], FirmwareRow>(
          `SELECT ${FIRMWARE_COLUMNS} FROM ota_firmware WHERE component = ? AND version = ?`,
        ).get(firmware.component, firmware.version);
        if (existing) return { created: false as const, existing: firmwareFromRow(existing) };
        this.prep(`INSERT INTO ota_firmware (${FIRMWARE_COLUMNS}) VALUES (${marks(13)})`).run(
          ...firmwareParams(firmware),
        );
        return { created: true as const };
      })
      .immediate();
  }

  async getFirmware(id: string): Promise<FirmwareRecord | null> {
    const row = this.prep<[string], FirmwareRow>(
      `SELECT ${FIRMWARE_COLUMNS} FROM ota_firmware WHERE id = ?`,
    ).get(id);
    return row ? firmwareFromRow(row) : null;
  }

  async findFirmware(component: string, version: string): Promise<FirmwareRecord | null> {
    const row = this.prep<[string, string], FirmwareRow>(
      `SELECT ${FIRMWARE_COLUMNS} FROM ota_firmware WHERE component = ? AND version = ?`,
    ).get(component, version);
    return row ? firmwareFromRow(row) : null;
  }

  async listFirmware(filter: FirmwareFilter): Promise<Page<FirmwareRecord>> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.component !== undefined) {
      where.push('component = ?');
      params.push(filter.component);
    }
    if (filter.after !== undefined) {
      where.push('(uploaded_at, id) < (SELECT uploaded_at, id FROM ota_firmware WHERE id = ?)');
      params.push(filter.after);
    }
    const rows = this.db
      .prepare<Param[], FirmwareRow>(
        `SELECT ${FIRMWARE_COLUMNS} FROM ota_firmware
           ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
           ORDER BY uploaded_at DESC, id DESC LIMIT ?`,
      )
      .all(...params, filter.limit + 1);
    return page(rows.map(firmwareFromRow), filter.limit);
  }

  async insertRollout(rollout: RolloutRecord, devices: readonly NewRolloutDevice[]) {
    const insertDevice = this.prep(
      `INSERT INTO ota_rollout_devices (${ROLLOUT_DEVICE_COLUMNS})
         VALUES (?, ?, ?, ?, 'pending', NULL, NULL, NULL, NULL, ?, 0)`,
    );
    this.db
      .transaction(() => {
        this.prep(`INSERT INTO ota_rollouts (${ROLLOUT_COLUMNS}) VALUES (${marks(16)})`).run(
          ...rolloutParams(rollout),
        );
        for (const d of devices)
          insertDevice.run(rollout.id, d.deviceId, d.position, d.wave, rollout.createdAt);
      })
      .immediate();
  }

  async getRollout(id: string): Promise<RolloutRecord | null> {
    const row = this.prep<[string], RolloutRow>(
      `SELECT ${ROLLOUT_COLUMNS} FROM ota_rollouts WHERE id = ?`,
    ).get(id);
    return row ? rolloutFromRow(row) : null;
  }

  async listRollouts(filter: RolloutFilter): Promise<Page<RolloutRecord>> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.status !== undefined) {
      if (filter.status.length === 0) return { items: [], next: null };
      where.push(`status IN (${marks(filter.status.length)})`);
      params.push(...filter.status);
    }
    if (filter.after !== undefined) {
      where.push('(created_at, id) < (SELECT created_at, id FROM ota_rollouts WHERE id = ?)');
      params.push(filter.after);
    }
    const rows = this.db
      .prepare<Param[], RolloutRow>(
        `SELECT ${ROLLOUT_COLUMNS} FROM ota_rollouts
           ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
           ORDER BY created_at DESC, id DESC LIMIT ?`,
      )
      .all(...params, filter.limit + 1);
    return page(rows.map(rolloutFromRow), filter.limit);
  }

  async updateRollout(
    id: string,
    expectedRevision: number,
    change: RolloutChange,
  ): Promise<RolloutRecord | null> {
    const row = this.prep<Param[], RolloutRow>(
      `UPDATE ota_rollouts
         SET status = ?, current_wave = ?, waves = ?, reason = ?, finished_at = ?, updated_at = ?,
             revision = revision + 1
         WHERE id = ? AND revision = ?
         RETURNING ${ROLLOUT_COLUMNS}`,
    ).get(...rolloutChangeParams(change), id, expectedRevision);
    return row ? rolloutFromRow(row) : null;
  }

  async listRolloutDevices(rolloutId: string): Promise<RolloutDeviceRecord[]> {
    return this.prep<[string], RolloutDeviceRow>(
      `SELECT ${ROLLOUT_DEVICE_COLUMNS} FROM ota_rollout_devices WHERE rollout_id = ? ORDER BY position`,
    )
      .all(rolloutId)
      .map(rolloutDeviceFromRow);
  }

  async getRolloutDevice(rolloutId: string, deviceId: string) {
    const row = this.prep<[string, string], RolloutDeviceRow>(
      `SELECT ${ROLLOUT_DEVICE_COLUMNS} FROM ota_rollout_devices WHERE rollout_id = ? AND device_id = ?`,
    ).get(rolloutId, deviceId);
    return row ? rolloutDeviceFromRow(row) : null;
  }

  async updateRolloutDevice(
    rolloutId: string,
    deviceId: string,
    expectedRevision: number,
    change: DeviceChange,
  ): Promise<RolloutDeviceRecord | null> {
    const row = this.prep<Param[], RolloutDeviceRow>(
      `UPDATE ota_rollout_devices
         SET state = ?, reason = ?, detail = ?, version = ?, updated_at = ?, revision = revision + 1
         WHERE rollout_id = ? AND device_id = ? AND revision = ?
         RETURNING ${ROLLOUT_DEVICE_COLUMNS}`,
    ).get(
      change.state,
      change.reason,
      change.detail,
      change.version,
      change.updatedAt,
      rolloutId,
      deviceId,
      expectedRevision,
    );
    return row ? rolloutDeviceFromRow(row) : null;
  }

  async markOffered(rolloutId: string, deviceIds: readonly string[], now: number) {
    return this.db
      .transaction(() => {
        const moved: string[] = [];
        for (const ids of slices(deviceIds)) {
          const rows = this.db
            .prepare<Param[], { device_id: string }>(
              `UPDATE ota_rollout_devices
                 SET state = 'offered', offered_at = ?, updated_at = ?, revision = revision + 1
                 WHERE rollout_id = ? AND state = 'pending' AND device_id IN (${marks(ids.length)})
                   AND EXISTS (SELECT 1 FROM ota_rollouts r WHERE r.id = rollout_id AND r.status = 'running')
                 RETURNING device_id`,
            )
            .all(now, now, rolloutId, ...ids);
          moved.push(...rows.map((r) => r.device_id));
        }
        return moved;
      })
      .immediate();
  }

  async offersAwaiting(deviceId: string): Promise<RolloutDeviceRecord[]> {
    return this.prep<[string], RolloutDeviceRow>(
      `SELECT ${ROLLOUT_DEVICE_COLUMNS.split(', ')
        .map((c) => `d.${c}`)
        .join(', ')}
         FROM ota_rollout_devices d JOIN ota_rollouts r ON r.id = d.rollout_id
         WHERE d.device_id = ? AND d.state = 'offered' AND r.status = 'running'
         ORDER BY r.created_at, r.id`,
    )
      .all(deviceId)
      .map(rolloutDeviceFromRow);
  }

  async busyDevices(component: string, deviceIds: readonly string[]) {
    const busy: { deviceId: string; rolloutId: string }[] = [];
    for (const ids of slices(deviceIds)) {
      const rows = this.db
        .prepare<Param[], { device_id: string; rollout_id: string }>(
          `SELECT d.device_id, d.rollout_id
             FROM ota_rollout_devices d JOIN ota_rollouts r ON r.id = d.rollout_id
             WHERE r.component = ? AND r.status IN (${quoted(ACTIVE_STATUSES)})
               AND d.state NOT IN (${quoted(FINISHED_DEVICE_STATES)})
               AND d.device_id IN (${marks(ids.length)})
             ORDER BY d.device_id`,
        )
        .all(component, ...ids);
      busy.push(...rows.map((r) => ({ deviceId: r.device_id, rolloutId: r.rollout_id })));
    }
    return busy;
  }

  async wasOffered(firmwareId: string, deviceIds: readonly string[]): Promise<boolean> {
    if (deviceIds.length === 0) return false;
    for (const ids of slices(deviceIds)) {
      const row = this.db
        .prepare<Param[], { one: number }>(
          `SELECT 1 AS one FROM ota_rollout_devices d JOIN ota_rollouts r ON r.id = d.rollout_id
             WHERE r.firmware_id = ? AND d.state <> 'pending' AND d.device_id IN (${marks(ids.length)})
             LIMIT 1`,
        )
        .get(firmwareId, ...ids);
      if (row) return true;
    }
    return false;
  }
}
