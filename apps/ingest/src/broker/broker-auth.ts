import { AppError } from '@outpost/protocol/errors';
import type { DeviceKind } from '@outpost/protocol/ids';
import { isDeviceId } from '@outpost/protocol/ids';
import { verifyDeviceJwt } from '@outpost/signing/device-jwt';
import { isSigningError } from '@outpost/signing/errors';
import { type PublicJwk, parsePublicJwk } from '@outpost/signing/keys';
import type { DeviceRecord, RegistryStore } from '../registry/registry-store.js';

/** CONNACK return codes of MQTT 3.1.1 (§3.2.2.3). */
export const CONNACK = {
  identifierRejected: 2,
  serverUnavailable: 3,
  badUsernameOrPassword: 4,
  notAuthorized: 5,
} as const;
export type ConnackCode = (typeof CONNACK)[keyof typeof CONNACK];

/** Why a connection was refused: the return code sent, and a code for metrics and logs. */
export class ConnectionRefused extends AppError {
  constructor(
    readonly returnCode: ConnackCode,
    code: string,
    message: string,
  ) {
    super(
      returnCode === CONNACK.serverUnavailable ? 'unavailable' : 'unauthenticated',
      code,
      message,
    );
  }
}

/** An authenticated device connection: who it is and what it may do. */
export interface DeviceSession {
  deviceId: string;
  kind: DeviceKind;
  /** Children of a gateway; reloaded when a gateway names a device not in it. */
  children: Set<string>;
  childrenLoadedAt: number;
  /** The device's registered public keys: batches must verify against one of them. */
  keys: PublicJwk[];
  payloadSigning: 'required' | 'optional';
  tags: Readonly<Record<string, string>>;
  /** Epoch ms at which the device JWT expires and the session is closed. */
  expiresAt: number;
  /** Set when the service closes the session, recorded as the disconnect reason. */
  closeReason?: string;
}

export interface AuthenticateInput {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
}

export interface AuthenticateOptions {
  audience: string;
  maxLifetimeS: number;
  /** Epoch milliseconds. */
  now: number;
}

/**
 * PROTOCOL.md §3: clientId = username = device id; password = a device JWT signed by one of
 * the device's registered keys. Refuses unknown, pending and revoked devices.
 */
export async function authenticateDevice(
  store: RegistryStore,
  input: AuthenticateInput,
  options: AuthenticateOptions,
): Promise<DeviceSession> {
  // [MQTT-3.1.3-8] an empty client id is refused here: devices always name themselves.
  if (!input.clientId) {
    throw new ConnectionRefused(CONNACK.identifierRejected, 'client_id_empty', 'empty client id');
  }
  if (!isDeviceId(input.clientId)) {
    throw new ConnectionRefused(
      CONNACK.identifierRejected,
      'client_id_invalid',
      'client id is not a device id',
    );
  }
  if (input.username !== input.clientId) {
    throw new ConnectionRefused(
      CONNACK.notAuthorized,
      'username_mismatch',
      'username must equal the client id',
    );
  }
  if (!input.password || input.password.length === 0) {
    throw new ConnectionRefused(
      CONNACK.badUsernameOrPassword,
      'password_missing',
      'a device JWT is required',
    );
  }
  const device = await store.getDevice(input.clientId);
  if (device?.status !== 'active') {
    const code = !device
      ? 'device_unknown'
      : device.status === 'revoked'
        ? 'device_revoked'
        : 'device_not_enrolled';
    throw new ConnectionRefused(
      CONNACK.notAuthorized,
      code,
      `device ${input.clientId} may not connect (${code})`,
    );
  }
  const keys = device.keys.map((k) => parsePublicJwk(k.jwk));
  let exp: number;
  try {
    const verified = await verifyDeviceJwt(input.password, {
      keys,
      audience: options.audience,
      deviceId: input.clientId,
      maxLifetimeS: options.maxLifetimeS,
      now: () => options.now / 1000,
    });
    exp = verified.claims.exp;
  } catch (err) {
    if (isSigningError(err)) {
      throw new ConnectionRefused(CONNACK.badUsernameOrPassword, err.code, err.message);
    }
    throw err;
  }
  return sessionFor(store, device, keys, exp, options.now);
}

async function sessionFor(
  store: RegistryStore,
  device: DeviceRecord,
  keys: PublicJwk[],
  expS: number,
  now: number,
): Promise<DeviceSession> {
  const children =
    device.kind === 'gateway' ? new Set(await store.childrenOf(device.id)) : new Set<string>();
  return {
    deviceId: device.id,
    kind: device.kind,
    children,
    childrenLoadedAt: now,
    keys,
    payloadSigning: device.policy.payloadSigning,
    tags: device.tags,
    expiresAt: expS * 1000,
  };
}

/**
 * HTTP ingest (PROTOCOL.md §5): `Authorization: Bearer <device JWT>`. The device is found by
 * the token's `kid` (the thumbprint of one of its registered keys); the token must name it.
 */
export async function authenticateBearer(
  store: RegistryStore,
  authorization: string | undefined,
  options: AuthenticateOptions,
): Promise<DeviceSession> {
  const match = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(authorization ?? '');
  if (!match) {
    throw new ConnectionRefused(
      CONNACK.badUsernameOrPassword,
      'token_missing',
      'a device JWT is required (Authorization: Bearer …)',
    );
  }
  let device: DeviceRecord | null = null;
  try {
    const verified = await verifyDeviceJwt(match[1]!, {
      keys: async (kid) => {
        device = await store.deviceByKid(kid);
        if (device?.status !== 'active') return [];
        // `subject` binds the key to its device: the token's `sub` must be that device.
        const subject = device.id;
        return device.keys.map((k) => ({ jwk: parsePublicJwk(k.jwk), subject }));
      },
      audience: options.audience,
      maxLifetimeS: options.maxLifetimeS,
      now: () => options.now / 1000,
    });
    const found = device as DeviceRecord | null;
    if (!found)
      throw new ConnectionRefused(CONNACK.notAuthorized, 'device_unknown', 'unknown device');
    return sessionFor(
      store,
      found,
      found.keys.map((k) => parsePublicJwk(k.jwk)),
      verified.claims.exp,
      options.now,
    );
  } catch (err) {
    if (isSigningError(err)) {
      throw new ConnectionRefused(CONNACK.badUsernameOrPassword, err.code, err.message);
    }
    throw err;
  }
}
