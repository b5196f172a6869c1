import type { Role } from '@outpost/protocol/claims';
import { AppError } from '@outpost/protocol/errors';
import type { DeviceKind } from '@outpost/protocol/ids';

/**
 * The registry and the service's own state (tokens, service keys). One port, two
 * implementations (SQLite, PostgreSQL), one contract suite (`registry-store.contract.ts`).
 * Times are epoch milliseconds.
 */

export type DeviceStatus = 'pending' | 'active' | 'revoked';
export type PayloadSigning = 'required' | 'optional';

export interface PublicKeyRecord {
  kid: string;
  alg: 'EdDSA' | 'ES256';
  jwk: Record<string, unknown>;
  addedAt: number;
}

export interface Connectivity {
  online: boolean;
  lastSeen: number | null;
  disconnectReason: string | null;
}

export interface DeviceRecord {
  id: string;
  kind: DeviceKind;
  name: string | null;
  tags: Record<string, string>;
  gateway: string | null;
  policy: { payloadSigning: PayloadSigning };
  status: DeviceStatus;
  revokedAt: number | null;
  keys: PublicKeyRecord[];
  connectivity: Connectivity;
  reportedState: unknown;
  reportedAt: number | null;
  desiredConfig: unknown;
  desiredConfigVersion: number;
  createdAt: number;
  updatedAt: number;
}

export interface NewDevice {
  id: string;
  kind: DeviceKind;
  name?: string | null;
  tags?: Record<string, string>;
  gateway?: string | null;
  policy?: { payloadSigning: PayloadSigning };
}

export interface DevicePatch {
  name?: string | null;
  tags?: Record<string, string>;
  policy?: { payloadSigning: PayloadSigning };
  /** Setting desired config bumps `desiredConfigVersion` by one. */
  desiredConfig?: unknown;
}

/** `online`, `offline` and `buffering` (offline with readings pending in its outbox). */
export type ConnectivityFilter = 'online' | 'offline' | 'buffering';

export interface DeviceFilter {
  tags?: Record<string, string>;
  kind?: DeviceKind;
  gateway?: string;
  status?: DeviceStatus | ConnectivityFilter;
  /** Case-insensitive substring of id or name. */
  text?: string;
  limit: number;
  /** Opaque: the id after which to continue (ids are listed in order). */
  after?: string;
}

export interface DevicePage {
  items: DeviceRecord[];
  /** Pass as `after` to get the next page; null at the end. */
  next: string | null;
}

export interface EnrollmentRecord {
  jti: string;
  deviceId: string;
  kind: DeviceKind;
  gateway: string | null;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
}

export type EnrollmentOutcome =
  | { ok: true; device: DeviceRecord }
  | { ok: false; reason: 'unknown' | 'used' | 'expired' | 'revoked' | 'key_in_use' };

export interface ApiTokenRecord {
  id: string;
  name: string;
  roles: Role[];
  /** SHA-256 of the token, hex. The token itself is never stored. */
  hash: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface ServiceKeyRecord {
  kid: string;
  /** Private JWK of the service signing key. */
  privateJwk: Record<string, unknown>;
  createdAt: number;
}

export interface ConnectivityUpdate {
  deviceId: string;
  online: boolean;
  lastSeen: number;
  disconnectReason: string | null;
  /**
   * The replica holding the device's session (`config.replicaId`) when online; null when
   * offline. Recorded so the devices a replica leaves behind when it dies without a word
   * can be found and marked offline (`markReplicaOffline`).
   */
  replica: string | null;
}

/** A device `markReplicaOffline` recorded offline, and when it was last seen. */
export interface MarkedOffline {
  deviceId: string;
  lastSeen: number | null;
}

export class DeviceExists extends AppError {
  constructor(readonly ids: readonly string[]) {
    super(
      'conflict',
      'device_exists',
      `device${ids.length > 1 ? 's' : ''} already exist: ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ` and ${ids.length - 10} more` : ''}`,
      { details: { ids: ids.slice(0, 100) } },
    );
  }
}

export interface RegistryStore {
  /** Applies pending versioned migrations; safe to call from several replicas at once. */
  migrate(): Promise<void>;
  /** Throws when storage is unreachable (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;

  /** All-or-nothing insert; throws `DeviceExists` naming every id that already exists. */
  insertDevices(devices: readonly NewDevice[], now: number): Promise<void>;
  getDevice(id: string): Promise<DeviceRecord | null>;
  listDevices(filter: DeviceFilter): Promise<DevicePage>;
  countDevices(): Promise<number>;
  updateDevice(id: string, patch: DevicePatch, now: number): Promise<DeviceRecord | null>;
  /** Marks the device revoked; idempotent. Returns null if the device does not exist. */
  revokeDevice(id: string, now: number): Promise<DeviceRecord | null>;
  /** Ids of the devices whose parent gateway is `gatewayId`. */
  childrenOf(gatewayId: string): Promise<string[]>;
  /** Finds the device that holds the key with this kid. */
  deviceByKid(kid: string): Promise<DeviceRecord | null>;
  recordConnectivity(updates: readonly ConnectivityUpdate[]): Promise<void>;
  /**
   * Records offline, with `reason`, every device online through `replica` (null: every
   * online device, whichever replica recorded it), keeping its last-seen time. A device
   * recorded online by another replica since is not touched. Returns the devices changed,
   * in id order.
   */
  markReplicaOffline(replica: string | null, reason: string): Promise<MarkedOffline[]>;
  recordReportedState(
    deviceId: string,
    state: unknown,
    outboxPending: number,
    now: number,
  ): Promise<void>;

  insertEnrollment(enrollment: EnrollmentRecord): Promise<void>;
  getEnrollment(jti: string): Promise<(EnrollmentRecord & { usedAt: number | null }) | null>;
  /**
   * Atomically consumes the enrollment `jti` and activates its device with `key`.
   * Exactly one of any number of concurrent calls with one jti succeeds.
   */
  completeEnrollment(jti: string, key: PublicKeyRecord, now: number): Promise<EnrollmentOutcome>;

  insertApiToken(token: ApiTokenRecord): Promise<void>;
  getApiToken(id: string): Promise<ApiTokenRecord | null>;
  listApiTokens(): Promise<ApiTokenRecord[]>;
  revokeApiToken(id: string, now: number): Promise<ApiTokenRecord | null>;
  /** Records use at most once a minute per token (no write per request). */
  touchApiToken(id: string, now: number): Promise<void>;

  /** Inserts the key unless one exists; returns the keys in creation order (first wins). */
  ensureServiceKey(key: ServiceKeyRecord): Promise<ServiceKeyRecord[]>;
}
