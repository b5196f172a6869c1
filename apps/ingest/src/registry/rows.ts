import type { Role } from '@outpost/protocol/claims';
import type { DeviceKind } from '@outpost/protocol/ids';
import type {
  ApiTokenRecord,
  DeviceRecord,
  DeviceStatus,
  PayloadSigning,
  PublicKeyRecord,
} from './registry-store.js';

/**
 * Row shapes shared by the SQLite and PostgreSQL stores. SQLite returns JSON as text and
 * booleans as 0/1; PostgreSQL returns parsed JSON and booleans (int8 is parsed as number).
 */
type Json = string | Record<string, unknown> | unknown[] | null;

export interface DeviceRow {
  id: string;
  kind: DeviceKind;
  name: string | null;
  gateway: string | null;
  payload_signing: PayloadSigning;
  status: DeviceStatus;
  revoked_at: number | null;
  online: number | boolean;
  last_seen: number | null;
  disconnect_reason: string | null;
  replica: string | null;
  reported_state: Json;
  reported_at: number | null;
  outbox_pending: number;
  desired_config: Json;
  desired_config_version: number;
  created_at: number;
  updated_at: number;
}

export interface TagRow {
  device_id: string;
  key: string;
  value: string;
}

export interface KeyRow {
  device_id: string;
  kid: string;
  alg: 'EdDSA' | 'ES256';
  jwk: Json;
  added_at: number;
}

export interface TokenRow {
  id: string;
  name: string;
  roles: Json;
  hash: string;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

function json(value: Json): unknown {
  return typeof value === 'string' ? JSON.parse(value) : value;
}

export function deviceFromRows(
  rows: readonly DeviceRow[],
  tags: readonly TagRow[],
  keys: readonly KeyRow[],
): DeviceRecord[] {
  const tagsBy = new Map<string, Record<string, string>>();
  for (const t of tags) {
    const m = tagsBy.get(t.device_id) ?? {};
    m[t.key] = t.value;
    tagsBy.set(t.device_id, m);
  }
  const keysBy = new Map<string, PublicKeyRecord[]>();
  for (const k of keys) {
    const list = keysBy.get(k.device_id) ?? [];
    list.push({
      kid: k.kid,
      alg: k.alg,
      jwk: json(k.jwk) as Record<string, unknown>,
      addedAt: Number(k.added_at),
    });
    keysBy.set(k.device_id, list);
  }
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    name: r.name,
    tags: sortKeys(tagsBy.get(r.id) ?? {}),
    gateway: r.gateway,
    policy: { payloadSigning: r.payload_signing },
    status: r.status,
    revokedAt: num(r.revoked_at),
    keys: keysBy.get(r.id) ?? [],
    connectivity: {
      online: r.online === true || r.online === 1,
      lastSeen: num(r.last_seen),
      disconnectReason: r.disconnect_reason,
    },
    reportedState: json(r.reported_state) ?? null,
    reportedAt: num(r.reported_at),
    desiredConfig: json(r.desired_config) ?? null,
    desiredConfigVersion: Number(r.desired_config_version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  }));
}

export function tokenFromRow(r: TokenRow): ApiTokenRecord {
  return {
    id: r.id,
    name: r.name,
    roles: json(r.roles) as Role[],
    hash: r.hash,
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    expiresAt: num(r.expires_at),
    revokedAt: num(r.revoked_at),
    lastUsedAt: num(r.last_used_at),
  };
}

/** A LIKE pattern matching `text` as a substring, with LIKE's metacharacters escaped. */
export function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function num(v: number | string | null): number | null {
  return v === null ? null : Number(v);
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
