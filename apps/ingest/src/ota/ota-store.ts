import type { SigningAlgorithm } from '@outpost/protocol/claims';
import type { PublicJwk } from '@outpost/signing/keys';
import type { DeviceState, RolloutPlan, RolloutState, RolloutStatus } from './rollout.js';

/**
 * Where OTA state lives: release keys, firmware records, rollouts and each target device's
 * progress. One port, two implementations (SQLite, PostgreSQL), one contract suite
 * (`ota-store.contract.ts`). Firmware bytes are not here: see `firmware-store.ts`.
 * Times are epoch milliseconds.
 */
export const OTA_STORE = Symbol('OTA_STORE');

export interface ReleaseKeyRecord {
  /** RFC 7638 thumbprint of the public key (PROTOCOL.md §1). */
  kid: string;
  alg: SigningAlgorithm;
  /** The public JWK with `kid` and `alg`, exactly as devices receive it. */
  jwk: PublicJwk;
  name: string | null;
  createdBy: string;
  createdAt: number;
  revokedAt: number | null;
  revokedBy: string | null;
}

export type RevokeKeyOutcome =
  | { outcome: 'revoked' | 'already'; key: ReleaseKeyRecord }
  | { outcome: 'not_found' }
  | { outcome: 'last_key' };

export interface FirmwareRecord {
  id: string;
  /** From the signed manifest; shown, never used as a path. */
  name: string;
  component: string;
  version: string;
  hardware: string[];
  size: number;
  sha256: string;
  minVersion: string | null;
  /** The manifest's `createdAt` (epoch seconds, as signed). */
  manifestCreatedAt: number;
  /** The manifest as uploaded: a compact JWS by a release key, passed on to devices as is. */
  manifest: string;
  /** The release key that signed it. */
  kid: string;
  uploadedBy: string;
  uploadedAt: number;
}

export interface Page<T> {
  items: T[];
  /** Pass as `after` for the next page; null at the end. */
  next: string | null;
}

export interface FirmwareFilter {
  component?: string;
  limit: number;
  /** Newest first; continue after this id. */
  after?: string;
}

/** Who a rollout is for; the union of the three. Resolved once, when it is created. */
export interface RolloutTarget {
  /** Devices carrying all of these tags. */
  tags?: Record<string, string>;
  devices?: string[];
  /** The child devices of these gateways. */
  gateways?: string[];
}

export interface RolloutRecord extends RolloutState {
  id: string;
  firmwareId: string;
  component: string;
  version: string;
  target: RolloutTarget;
  plan: RolloutPlan;
  /** Offered as `rollbackTarget` (PROTOCOL.md §8): devices may install it though older. */
  rollbackTarget: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
  /** Bumped by every update: the optimistic lock of the rollout row. */
  revision: number;
}

export interface RolloutFilter {
  status?: readonly RolloutStatus[];
  limit: number;
  /** Newest first; continue after this id. */
  after?: string;
}

export type RolloutChange = Pick<
  RolloutRecord,
  'status' | 'currentWave' | 'waves' | 'reason' | 'finishedAt' | 'updatedAt'
>;

export interface RolloutDeviceRecord {
  rolloutId: string;
  deviceId: string;
  /** Place in the rollout's deterministic order. */
  position: number;
  wave: number;
  state: DeviceState;
  reason: string | null;
  /** The device's latest progress detail (e.g. `42%`). */
  detail: string | null;
  /** The version the device said it runs after the update. */
  version: string | null;
  offeredAt: number | null;
  updatedAt: number;
  /** Bumped by every update: the optimistic lock of the row. */
  revision: number;
}

export type DeviceChange = Pick<
  RolloutDeviceRecord,
  'state' | 'reason' | 'detail' | 'version' | 'updatedAt'
>;

export type NewRolloutDevice = Pick<RolloutDeviceRecord, 'deviceId' | 'position' | 'wave'>;

export interface OtaStore {
  /** Applies pending migrations; safe from several replicas at once. */
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  /**
   * Adds a release key; a kid already known is not changed (`created: false`, and the stored
   * record, which may be revoked).
   */
  addReleaseKey(key: ReleaseKeyRecord): Promise<{ created: boolean; key: ReleaseKeyRecord }>;
  /** Every key, revoked ones too, oldest first. */
  listReleaseKeys(): Promise<ReleaseKeyRecord[]>;
  /** Revokes a key unless it is the last one not revoked (devices must trust at least one). */
  revokeReleaseKey(kid: string, by: string, now: number): Promise<RevokeKeyOutcome>;
  /**
   * Version of the trusted key set: grows by one with every key added or revoked (keys are
   * never deleted and stay revoked), 0 when there never were any.
   */
  releaseKeySetVersion(): Promise<number>;
  /** The key set version last sent to a device (enrollment or `keys.release`); 0 if none. */
  releaseKeysSentTo(deviceId: string): Promise<number>;
  /** Records what was sent; a lower version never replaces a higher one. */
  recordReleaseKeysSent(deviceIds: readonly string[], version: number): Promise<void>;

  /** Refused when a firmware of this component and version exists: that one is returned. */
  insertFirmware(
    firmware: FirmwareRecord,
  ): Promise<{ created: true } | { created: false; existing: FirmwareRecord }>;
  getFirmware(id: string): Promise<FirmwareRecord | null>;
  findFirmware(component: string, version: string): Promise<FirmwareRecord | null>;
  listFirmware(filter: FirmwareFilter): Promise<Page<FirmwareRecord>>;

  /** The rollout and its target devices, all or nothing. */
  insertRollout(rollout: RolloutRecord, devices: readonly NewRolloutDevice[]): Promise<void>;
  getRollout(id: string): Promise<RolloutRecord | null>;
  listRollouts(filter: RolloutFilter): Promise<Page<RolloutRecord>>;
  /** Writes `change` if the stored revision is still `expectedRevision`; else null. */
  updateRollout(
    id: string,
    expectedRevision: number,
    change: RolloutChange,
  ): Promise<RolloutRecord | null>;

  /** The rollout's devices in rollout order. */
  listRolloutDevices(rolloutId: string): Promise<RolloutDeviceRecord[]>;
  getRolloutDevice(rolloutId: string, deviceId: string): Promise<RolloutDeviceRecord | null>;
  /** Writes `change` if the stored revision is still `expectedRevision`; else null. */
  updateRolloutDevice(
    rolloutId: string,
    deviceId: string,
    expectedRevision: number,
    change: DeviceChange,
  ): Promise<RolloutDeviceRecord | null>;
  /**
   * Moves these devices from `pending` to `offered`, only while the rollout is running;
   * returns the ids that moved (each device is offered once, whoever asks).
   */
  markOffered(rolloutId: string, deviceIds: readonly string[], now: number): Promise<string[]>;
  /** Rows of this device still `offered` in running rollouts (to send the offer again). */
  offersAwaiting(deviceId: string): Promise<RolloutDeviceRecord[]>;
  /**
   * Devices of `deviceIds` that are in a running or paused rollout of `component` and have
   * not finished there: a second rollout must not race it.
   */
  busyDevices(
    component: string,
    deviceIds: readonly string[],
  ): Promise<{ deviceId: string; rolloutId: string }[]>;
  /** Whether any of `deviceIds` was offered this firmware (artifact download access). */
  wasOffered(firmwareId: string, deviceIds: readonly string[]): Promise<boolean>;
}
