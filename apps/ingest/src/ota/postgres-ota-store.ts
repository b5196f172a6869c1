import { PostgresDatabase } from '../storage/postgres-database.js';
import { POSTGRES_OTA_MIGRATIONS } from './ota-migrations.js';
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

// Advisory lock key (per database): "out" followed by a purpose number; the registry uses
// 1 and 2, alerts 0x10.
const LOCK_MIGRATE = 0x6f7574_0020;
/** Rows per INSERT when a rollout's devices are written. */
const INSERT_BATCH = 1000;

const placeholders = (count: number, from = 1) =>
  Array.from({ length: count }, (_, i) => `$${from + i}`).join(', ');
const prefixed = (columns: string, alias: string) =>
  columns
    .split(', ')
    .map((c) => `${alias}.${c}`)
    .join(', ');

/** The OTA store on the PostgreSQL server the registry uses, shared by every replica. */
export class PostgresOtaStore implements OtaStore {
  private readonly db: PostgresDatabase;

  constructor(url: string, options: { poolSize?: number } = {}) {
    this.db = new PostgresDatabase(url, {
      poolSize: options.poolSize ?? 5,
      storeName: 'OTA store',
    });
  }

  async migrate(): Promise<void> {
    await this.db.migrate({
      table: 'ota_schema_migrations',
      lockId: LOCK_MIGRATE,
      migrations: POSTGRES_OTA_MIGRATIONS,
    });
  }

  async ping(): Promise<void> {
    // Only connection failures are unavailability here, as for every other statement.
    await this.db.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async addReleaseKey(key: ReleaseKeyRecord) {
    const inserted = await this.db.query<ReleaseKeyRow>(
      `INSERT INTO ota_release_keys (${RELEASE_KEY_COLUMNS}) VALUES (${placeholders(8)})
       ON CONFLICT (kid) DO NOTHING RETURNING ${RELEASE_KEY_COLUMNS}`,
      releaseKeyParams(key),
    );
    if (inserted[0]) return { created: true, key: releaseKeyFromRow(inserted[0]) };
    const [row] = await this.db.query<ReleaseKeyRow>(
      `SELECT ${RELEASE_KEY_COLUMNS} FROM ota_release_keys WHERE kid = $1`,
      [key.kid],
    );
    return { created: false, key: releaseKeyFromRow(row!) };
  }

  async listReleaseKeys(): Promise<ReleaseKeyRecord[]> {
    const rows = await this.db.query<ReleaseKeyRow>(
      `SELECT ${RELEASE_KEY_COLUMNS} FROM ota_release_keys ORDER BY created_at, kid`,
    );
    return rows.map(releaseKeyFromRow);
  }

  async revokeReleaseKey(kid: string, by: string, now: number): Promise<RevokeKeyOutcome> {
    return this.db.transaction(async (tx): Promise<RevokeKeyOutcome> => {
      // Lock every active key: two revocations racing cannot leave none.
      const { rows } = await tx.query<ReleaseKeyRow>(
        `SELECT ${RELEASE_KEY_COLUMNS} FROM ota_release_keys
         WHERE kid = $1 OR revoked_at IS NULL ORDER BY kid FOR UPDATE`,
        [kid],
      );
      const row = rows.find((r) => r.kid === kid);
      if (!row) return { outcome: 'not_found' };
      if (row.revoked_at !== null) return { outcome: 'already', key: releaseKeyFromRow(row) };
      if (rows.filter((r) => r.revoked_at === null).length <= 1) return { outcome: 'last_key' };
      await tx.query(
        'UPDATE ota_release_keys SET revoked_at = $1, revoked_by = $2 WHERE kid = $3',
        [now, by, kid],
      );
      return {
        outcome: 'revoked',
        key: releaseKeyFromRow({ ...row, revoked_at: now, revoked_by: by }),
      };
    });
  }

  async releaseKeySetVersion(): Promise<number> {
    const [row] = await this.db.query<{ v: number }>(
      'SELECT count(*) + count(revoked_at) AS v FROM ota_release_keys',
    );
    return row?.v ?? 0;
  }

  async releaseKeysSentTo(deviceId: string): Promise<number> {
    const [row] = await this.db.query<{ version: number }>(
      'SELECT version FROM ota_release_keys_sent WHERE device_id = $1',
      [deviceId],
    );
    return row?.version ?? 0;
  }

  async recordReleaseKeysSent(deviceIds: readonly string[], version: number): Promise<void> {
    if (deviceIds.length === 0) return;
    await this.db.query(
      `INSERT INTO ota_release_keys_sent (device_id, version)
       SELECT id, $2 FROM unnest($1::text[]) AS id
       ON CONFLICT (device_id) DO UPDATE
         SET version = greatest(ota_release_keys_sent.version, excluded.version)`,
      [[...new Set(deviceIds)], version],
    );
  }

  async insertFirmware(firmware: FirmwareRecord) {
    const inserted = await this.db.query(
      `INSERT INTO ota_firmware (${FIRMWARE_COLUMNS}) VALUES (${placeholders(13)})
       ON CONFLICT (component, version) DO NOTHING RETURNING id`,
      firmwareParams(firmware),
    );
    if (inserted.length === 1) return { created: true as const };
    return {
      created: false as const,
      existing: (await this.findFirmware(firmware.component, firmware.version))!,
    };
  }

  async findFirmware(component: string, version: string): Promise<FirmwareRecord | null> {
    const [row] = await this.db.query<FirmwareRow>(
      `SELECT ${FIRMWARE_COLUMNS} FROM ota_firmware WHERE component = $1 AND version = $2`,
      [component, version],
    );
    return row ? firmwareFromRow(row) : null;
  }

  async getFirmware(id: string): Promise<FirmwareRecord | null> {
    const [row] = await this.db.query<FirmwareRow>(
      `SELECT ${FIRMWARE_COLUMNS} FROM ota_firmware WHERE id = $1`,
      [id],
    );
    return row ? firmwareFromRow(row) : null;
  }

  async listFirmware(filter: FirmwareFilter): Promise<Page<FirmwareRecord>> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.component !== undefined) {
      params.push(filter.component);
      where.push(`component = $${params.length}`);
    }
    if (filter.after !== undefined) {
      params.push(filter.after);
      where.push(
        `(uploaded_at, id) < (SELECT uploaded_at, id FROM ota_firmware WHERE id = $${params.length})`,
      );
    }
    params.push(filter.limit + 1);
    const rows = await this.db.query<FirmwareRow>(
      `SELECT ${FIRMWARE_COLUMNS} FROM ota_firmware
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY uploaded_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return page(rows.map(firmwareFromRow), filter.limit);
  }

  async insertRollout(rollout: RolloutRecord, devices: readonly NewRolloutDevice[]) {
    await this.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO ota_rollouts (${ROLLOUT_COLUMNS}) VALUES (${placeholders(16)})`,
        rolloutParams(rollout),
      );
      for (let i = 0; i < devices.length; i += INSERT_BATCH) {
        const batch = devices.slice(i, i + INSERT_BATCH);
        await tx.query(
          `INSERT INTO ota_rollout_devices (${ROLLOUT_DEVICE_COLUMNS})
           SELECT $1, d.id, d.position, d.wave, 'pending', NULL, NULL, NULL, NULL, $2, 0
           FROM unnest($3::text[], $4::int[], $5::int[]) AS d(id, position, wave)`,
          [
            rollout.id,
            rollout.createdAt,
            batch.map((d) => d.deviceId),
            batch.map((d) => d.position),
            batch.map((d) => d.wave),
          ],
        );
      }
    });
  }

  async getRollout(id: string): Promise<RolloutRecord | null> {
    const [row] = await this.db.query<RolloutRow>(
      `SELECT ${ROLLOUT_COLUMNS} FROM ota_rollouts WHERE id = $1`,
      [id],
    );
    return row ? rolloutFromRow(row) : null;
  }

  async listRollouts(filter: RolloutFilter): Promise<Page<RolloutRecord>> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status !== undefined) {
      params.push([...filter.status]);
      where.push(`status = ANY($${params.length}::text[])`);
    }
    if (filter.after !== undefined) {
      params.push(filter.after);
      where.push(
        `(created_at, id) < (SELECT created_at, id FROM ota_rollouts WHERE id = $${params.length})`,
      );
    }
    params.push(filter.limit + 1);
    const rows = await this.db.query<RolloutRow>(
      `SELECT ${ROLLOUT_COLUMNS} FROM ota_rollouts
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return page(rows.map(rolloutFromRow), filter.limit);
  }

  async updateRollout(
    id: string,
    expectedRevision: number,
    change: RolloutChange,
  ): Promise<RolloutRecord | null> {
    const [row] = await this.db.query<RolloutRow>(
      `UPDATE ota_rollouts
       SET status = $1, current_wave = $2, waves = $3, reason = $4, finished_at = $5, updated_at = $6,
           revision = revision + 1
       WHERE id = $7 AND revision = $8
       RETURNING ${ROLLOUT_COLUMNS}`,
      [...rolloutChangeParams(change), id, expectedRevision],
    );
    return row ? rolloutFromRow(row) : null;
  }

  async listRolloutDevices(rolloutId: string): Promise<RolloutDeviceRecord[]> {
    const rows = await this.db.query<RolloutDeviceRow>(
      `SELECT ${ROLLOUT_DEVICE_COLUMNS} FROM ota_rollout_devices WHERE rollout_id = $1 ORDER BY position`,
      [rolloutId],
    );
    return rows.map(rolloutDeviceFromRow);
  }

  async getRolloutDevice(rolloutId: string, deviceId: string) {
    const [row] = await this.db.query<RolloutDeviceRow>(
      `SELECT ${ROLLOUT_DEVICE_COLUMNS} FROM ota_rollout_devices WHERE rollout_id = $1 AND device_id = $2`,
      [rolloutId, deviceId],
    );
    return row ? rolloutDeviceFromRow(row) : null;
  }

  async updateRolloutDevice(
    rolloutId: string,
    deviceId: string,
    expectedRevision: number,
    change: DeviceChange,
  ): Promise<RolloutDeviceRecord | null> {
    const [row] = await this.db.query<RolloutDeviceRow>(
      `UPDATE ota_rollout_devices
       SET state = $1, reason = $2, detail = $3, version = $4, updated_at = $5, revision = revision + 1
       WHERE rollout_id = $6 AND device_id = $7 AND revision = $8
       RETURNING ${ROLLOUT_DEVICE_COLUMNS}`,
      [
        change.state,
        change.reason,
        change.detail,
        change.version,
        change.updatedAt,
        rolloutId,
        deviceId,
        expectedRevision,
      ],
    );
    return row ? rolloutDeviceFromRow(row) : null;
  }

  async markOffered(rolloutId: string, deviceIds: readonly string[], now: number) {
    if (deviceIds.length === 0) return [];
    const rows = await this.db.query<{ device_id: string }>(
      `UPDATE ota_rollout_devices d
       SET state = 'offered', offered_at = $1, updated_at = $1, revision = d.revision + 1
       FROM ota_rollouts r
       WHERE r.id = d.rollout_id AND r.status = 'running'
         AND d.rollout_id = $2 AND d.state = 'pending' AND d.device_id = ANY($3::text[])
       RETURNING d.device_id`,
      [now, rolloutId, [...deviceIds]],
    );
    return rows.map((r) => r.device_id);
  }

  async offersAwaiting(deviceId: string): Promise<RolloutDeviceRecord[]> {
    const rows = await this.db.query<RolloutDeviceRow>(
      `SELECT ${prefixed(ROLLOUT_DEVICE_COLUMNS, 'd')}
       FROM ota_rollout_devices d JOIN ota_rollouts r ON r.id = d.rollout_id
       WHERE d.device_id = $1 AND d.state = 'offered' AND r.status = 'running'
       ORDER BY r.created_at, r.id`,
      [deviceId],
    );
    return rows.map(rolloutDeviceFromRow);
  }

  async busyDevices(component: string, deviceIds: readonly string[]) {
    if (deviceIds.length === 0) return [];
    const rows = await this.db.query<{ device_id: string; rollout_id: string }>(
      `SELECT d.device_id, d.rollout_id
       FROM ota_rollout_devices d JOIN ota_rollouts r ON r.id = d.rollout_id
       WHERE r.component = $1 AND r.status = ANY($2::text[])
         AND NOT (d.state = ANY($3::text[])) AND d.device_id = ANY($4::text[])
       ORDER BY d.device_id`,
      [component, [...ACTIVE_STATUSES], [...FINISHED_DEVICE_STATES], [...deviceIds]],
    );
    return rows.map((r) => ({ deviceId: r.device_id, rolloutId: r.rollout_id }));
  }

  async wasOffered(firmwareId: string, deviceIds: readonly string[]): Promise<boolean> {
    if (deviceIds.length === 0) return false;
    const rows = await this.db.query(
      `SELECT 1 FROM ota_rollout_devices d JOIN ota_rollouts r ON r.id = d.rollout_id
       WHERE r.firmware_id = $1 AND d.state <> 'pending' AND d.device_id = ANY($2::text[])
       LIMIT 1`,
      [firmwareId, [...deviceIds]],
    );
    return rows.length > 0;
  }
}
