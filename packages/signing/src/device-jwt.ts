import {
  DEFAULT_AUDIENCE,
  type DeviceJwtClaims,
  deviceJwtClaimsSchema,
} from '@outpost/protocol/claims';
import { MAX_DEVICE_JWT_LIFETIME_S } from '@outpost/protocol/limits';
import type { KeyCache } from './key-cache.js';
import type { ReplayCache } from './replay-cache.js';
import { randomJti, type SignedToken, type SigningKeyInput, signClaims } from './sign.js';
import {
  defaultNow,
  fail,
  type KeySource,
  type TimeOptions,
  type VerifiedJwt,
  verifyJwt,
} from './verify.js';

/** Lifetime of a device JWT when the signer does not choose one. */
export const DEFAULT_DEVICE_JWT_LIFETIME_S = 60 * 60;

export interface SignDeviceJwtInput {
  deviceId: string;
  /** Defaults to `DEFAULT_AUDIENCE`. */
  audience?: string;
  /** Defaults to `DEFAULT_DEVICE_JWT_LIFETIME_S`. */
  lifetimeS?: number;
  /** Current time in epoch seconds. */
  now?: () => number;
  jti?: string;
}

/**
 * PROTOCOL.md §3: the device JWT a device presents as MQTT password or HTTP bearer, signed by
 * its own key: header `{alg, kid, typ: "JWT"}`, claims `iss` = `sub` = device id, `aud`,
 * `iat`, `exp`, `jti`.
 */
export async function signDeviceJwt(
  key: SigningKeyInput,
  input: SignDeviceJwtInput,
): Promise<SignedToken<DeviceJwtClaims>> {
  const iat = Math.floor((input.now ?? defaultNow)());
  const claims = {
    iss: input.deviceId,
    sub: input.deviceId,
    aud: input.audience ?? DEFAULT_AUDIENCE,
    iat,
    exp: iat + (input.lifetimeS ?? DEFAULT_DEVICE_JWT_LIFETIME_S),
    jti: input.jti ?? randomJti(),
  };
  return signClaims('deviceJwt', deviceJwtClaimsSchema, claims, key);
}

export interface VerifyDeviceJwtOptions extends TimeOptions {
  /** The device's registered keys (see `KeyResolver`). */
  readonly keys: KeySource;
  /** Expected `aud`; defaults to `DEFAULT_AUDIENCE` (INGEST_AUDIENCE). */
  readonly audience?: string;
  /** The device id the connection claims (MQTT username and clientId); `sub` must equal it. */
  readonly deviceId?: string;
  /** Defaults to `MAX_DEVICE_JWT_LIFETIME_S` (24 h). */
  readonly maxLifetimeS?: number;
  readonly maxBytes?: number;
  readonly keyCache?: KeyCache;
  readonly replayCache?: ReplayCache;
}

/** Verifies a device JWT (PROTOCOL.md §3); every refusal is a `SigningError`. */
export function verifyDeviceJwt(
  token: string | Uint8Array,
  options: VerifyDeviceJwtOptions,
): Promise<VerifiedJwt<DeviceJwtClaims>> {
  return verifyJwt('deviceJwt', token, {
    ...options,
    schema: deviceJwtClaimsSchema,
    audience: options.audience ?? DEFAULT_AUDIENCE,
    maxLifetimeS: options.maxLifetimeS ?? MAX_DEVICE_JWT_LIFETIME_S,
    checkClaims: (claims) => {
      // PROTOCOL.md §3: a device speaks only for itself.
      if (claims.iss !== claims.sub) {
        fail('deviceJwt', 'iss_sub_mismatch', '"iss" and "sub" must both be the device id');
      }
      // PROTOCOL.md §3: clientId = username = sub.
      if (options.deviceId !== undefined && claims.sub !== options.deviceId) {
        fail('deviceJwt', 'subject_mismatch', 'the token belongs to another device');
      }
    },
  });
}
