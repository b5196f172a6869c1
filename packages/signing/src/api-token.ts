import { type ApiTokenClaims, apiTokenClaimsSchema, type Role } from '@outpost/protocol/claims';
import type { KeyCache } from './key-cache.js';
import { randomJti, type SignedToken, type SigningKeyInput, signClaims } from './sign.js';
import {
  defaultNow,
  type KeySource,
  type TimeOptions,
  type VerifiedJwt,
  verifyJwt,
} from './verify.js';

export interface SignApiTokenInput {
  issuer: string;
  /** Who the token is for (a user or script name). */
  subject: string;
  roles: readonly Role[];
  /** Lifetime in seconds; omitted, the token does not expire and lives until revoked. */
  ttlS?: number;
  now?: () => number;
  jti?: string;
}

/** SURFACES.md: an API token for people and scripts, signed by the service key. */
export async function signApiToken(
  serviceKey: SigningKeyInput,
  input: SignApiTokenInput,
): Promise<SignedToken<ApiTokenClaims>> {
  const iat = Math.floor((input.now ?? defaultNow)());
  const claims = {
    iss: input.issuer,
    sub: input.subject,
    roles: [...input.roles],
    iat,
    ...(input.ttlS === undefined ? {} : { exp: iat + input.ttlS }),
    jti: input.jti ?? randomJti(),
  };
  return signClaims('api', apiTokenClaimsSchema, claims, serviceKey);
}

export interface VerifyApiTokenOptions extends TimeOptions {
  /** The service's signing keys (its JWKS). */
  readonly keys: KeySource;
  /** When set, `iss` must equal it. */
  readonly issuer?: string;
  /**
   * Defaults to true. Set false to accept tokens without `exp` (such as the bootstrap admin
   * token); those rely on revocation by `jti`, which the caller checks.
   */
  readonly requireExp?: boolean;
  readonly maxLifetimeS?: number;
  readonly maxBytes?: number;
  readonly keyCache?: KeyCache;
}

/** Verifies an API token. Revocation (by `jti`) is the caller's check. */
export function verifyApiToken(
  token: string | Uint8Array,
  options: VerifyApiTokenOptions,
): Promise<VerifiedJwt<ApiTokenClaims>> {
  return verifyJwt('api', token, { ...options, schema: apiTokenClaimsSchema });
}
