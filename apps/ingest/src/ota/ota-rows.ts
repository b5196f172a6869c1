import type { SigningAlgorithm } from '@outpost/protocol/claims';
import type { PublicJwk } from '@outpost/signing/keys';
import type {
  FirmwareRecord,
  Page,
  ReleaseKeyRecord,
  RolloutChange,
  RolloutDeviceRecord,
  RolloutRecord,
  RolloutTarget,
} from './ota-store.js';
import type { DeviceState, RolloutPlan, RolloutStatus, WaveMark } from './rollout.js';

/**
 * Row shapes shared by the SQLite and PostgreSQL OTA stores. SQLite returns JSON as text;
 * PostgreSQL returns parsed JSON (int8 is parsed as number by the store's pool).
 */
type Json = string | Record<string, unknown> | unknown[];

function json<T>(value: Json): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

export interface ReleaseKeyRow {
  kid: string;
  alg: SigningAlgorithm;
  jwk: Json;
  name: string | null;
  created_by: string;
  created_at: number;
  revoked_at: number | null;
  revoked_by: string | null;
}

export function releaseKeyFromRow(r: ReleaseKeyRow): ReleaseKeyRecord {
  return {
    kid: r.kid,
    alg: r.alg,
    jwk: json<PublicJwk>(r.jwk),
    name: r.name,
    createdBy: r.created_by,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
    revokedBy: r.revoked_by,
  };
}

export const RELEASE_KEY_COLUMNS =
  'kid, alg, jwk, name, created_by, created_at, revoked_at, revoked_by';

export function releaseKeyParams(k: ReleaseKeyRecord) {
  return [
    k.kid,
    k.alg,
    JSON.stringify(k.jwk),
    k.name,
    k.createdBy,
    k.createdAt,
    k.revokedAt,
    k.revokedBy,
  ];
}

export interface FirmwareRow {
  id: string;
  name: string;
  component: string;
  version: string;
  hardware: Json;
  size: number;
  sha256: string;
  min_version: string | null;
  manifest_created_at: number;
  manifest: string;
  kid: string;
  uploaded_by: string;
  uploaded_at: number;
}

export const FIRMWARE_COLUMNS =
  'id, name, component, version, hardware, size, sha256, min_version, manifest_created_at, manifest, kid, uploaded_by, uploaded_at';

export function firmwareFromRow(r: FirmwareRow): FirmwareRecord {
  return {
    id: r.id,
    name: r.name,
    component: r.component,
    version: r.version,
    hardware: json<string[]>(r.hardware),
    size: r.size,
    sha256: r.sha256,
    minVersion: r.min_version,
    manifestCreatedAt: r.manifest_created_at,
    manifest: r.manifest,
    kid: r.kid,
    uploadedBy: r.uploaded_by,
    uploadedAt: r.uploaded_at,
  };
}

export function firmwareParams(f: FirmwareRecord) {
  return [
    f.id,
    f.name,
    f.component,
    f.version,
    JSON.stringify(f.hardware),
    f.size,
    f.sha256,
    f.minVersion,
    f.manifestCreatedAt,
    f.manifest,
    f.kid,
    f.uploadedBy,
    f.uploadedAt,
  ];
}

export interface RolloutRow {
  id: string;
  firmware_id: string;
  component: string;
  version: string;
  target: Json;
  plan: Json;
  rollback_target: string | null;
  status: RolloutStatus;
  current_wave: number;
  waves: Json;
  reason: string | null;
  finished_at: number | null;
  created_by: string;
  created_at: number;
  updated_at: number;
  revision: number;
}

export const ROLLOUT_COLUMNS =
  'id, firmware_id, component, version, target, plan, rollback_target, status, current_wave, waves, reason, finished_at, created_by, created_at, updated_at, revision';

export function rolloutFromRow(r: RolloutRow): RolloutRecord {
  return {
    id: r.id,
    firmwareId: r.firmware_id,
    component: r.component,
    version: r.version,
    target: json<RolloutTarget>(r.target),
    plan: json<RolloutPlan>(r.plan),
    rollbackTarget: r.rollback_target,
    status: r.status,
    currentWave: r.current_wave,
    waves: json<WaveMark[]>(r.waves),
    reason: r.reason,
    finishedAt: r.finished_at,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    revision: r.revision,
  };
}

export function rolloutParams(r: RolloutRecord) {
  return [
    r.id,
    r.firmwareId,
    r.component,
    r.version,
    JSON.stringify(r.target),
    JSON.stringify(r.plan),
    r.rollbackTarget,
    r.status,
    r.currentWave,
    JSON.stringify(r.waves),
    r.reason,
    r.finishedAt,
    r.createdBy,
    r.createdAt,
    r.updatedAt,
    r.revision,
  ];
}

/** Parameters of an UPDATE … SET status, current_wave, waves, reason, finished_at, updated_at. */
export function rolloutChangeParams(c: RolloutChange) {
  return [c.status, c.currentWave, JSON.stringify(c.waves), c.reason, c.finishedAt, c.updatedAt];
}

export interface RolloutDeviceRow {
  rollout_id: string;
  device_id: string;
  position: number;
  wave: number;
  state: DeviceState;
  reason: string | null;
  detail: string | null;
  version: string | null;
  offered_at: number | null;
  updated_at: number;
  revision: number;
}

export const ROLLOUT_DEVICE_COLUMNS =
  'rollout_id, device_id, position, wave, state, reason, detail, version, offered_at, updated_at, revision';

export function rolloutDeviceFromRow(r: RolloutDeviceRow): RolloutDeviceRecord {
  return {
    rolloutId: r.rollout_id,
    deviceId: r.device_id,
    position: r.position,
    wave: r.wave,
    state: r.state,
    reason: r.reason,
    detail: r.detail,
    version: r.version,
    offeredAt: r.offered_at,
    updatedAt: r.updated_at,
    revision: r.revision,
  };
}

/** Rollouts that may still offer or be offered on: the ones a device can be busy in. */
export const ACTIVE_STATUSES = ['running', 'paused'] as const;
/** Device states in which a device has finished its update. */
export const FINISHED_DEVICE_STATES = ['succeeded', 'failed', 'rolled_back'] as const;

/** A page from `limit + 1` rows read newest first: the extra row says there is more. */
export function page<T extends { id: string }>(items: T[], limit: number): Page<T> {
  const more = items.length > limit;
  const shown = more ? items.slice(0, limit) : items;
  return { items: shown, next: more ? (shown.at(-1)?.id ?? null) : null };
}
