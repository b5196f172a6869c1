import {
  type EnrollmentProofClaims,
  type EnrollmentTokenClaims,
  enrollmentProofClaimsSchema,
  enrollmentTokenClaimsSchema,
} from '@outpost/protocol/claims';
import type { DeviceKind } from '@outpost/protocol/ids';
import { ENROLLMENT_TOKEN_TTL_S } from '@outpost/protocol/limits';
import type { KeyCache } from './key-cache.js';
import { parsePublicJwk } from './keys.js';
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

export interface SignEnrollmentTokenInput {
  /** The service's issuer name; verifiers may require it. */
  issuer: string;
  deviceId: string;
  /** Defaults to `device`. */
  kind?: DeviceKind;
  /** Parent gateway of a child device. */
  gateway?: string;
  /** Defaults to `ENROLLMENT_TOKEN_TTL_S` (24 h). */
  ttlS?: number;
  now?: () => number;
  jti?: string;
}

/** PROTOCOL.md §2 step 1: the single-use enrollment token, signed by the service key. */
export async function signEnrollmentToken(
  serviceKey: SigningKeyInput,
  input: SignEnrollmentTokenInput,
): Promise<SignedToken<EnrollmentTokenClaims>> {
  const iat = Math.floor((input.now ?? defaultNow)());
  const claims = {
    iss: input.issuer,
    sub: input.deviceId,
    kind: input.kind ?? 'device',
    ...(input.gateway === undefined ? {} : { gw: input.gateway }),
    iat,
    exp: iat + (input.ttlS ?? ENROLLMENT_TOKEN_TTL_S),
    jti: input.jti ?? randomJti(),
  };
  return signClaims('enrollment', enrollmentTokenClaimsSchema, claims, serviceKey);
}

export interface VerifyEnrollmentTokenOptions extends TimeOptions {
  /** The service's signing keys (its JWKS). */
  readonly keys: KeySource;
  /** When set, `iss` must equal it. */
  readonly issuer?: string;
  /** Largest `exp - iat` accepted; unbounded unless set. */
  readonly maxLifetimeS?: number;
  readonly maxBytes?: number;
  readonly keyCache?: KeyCache;
  /**
   * Optional fast refusal of a second use. Single use itself is the registry's job: it must
   * consume the token's `jti` atomically (PROTOCOL.md §2 step 2).
   */
  readonly replayCache?: ReplayCache;
}

export function verifyEnrollmentToken(
  token: string | Uint8Array,
  options: VerifyEnrollmentTokenOptions,
): Promise<VerifiedJwt<EnrollmentTokenClaims>> {
  return verifyJwt('enrollment', token, { ...options, schema: enrollmentTokenClaimsSchema });
}

export interface SignEnrollmentProofInput {
  /** The enrollment token's `jti`. */
  jti: string;
  deviceId: string;
  now?: () => number;
}

/**
 * PROTOCOL.md §2 step 2: proof of possession of the new device key, a JWS over
 * `{jti, sub, iat}` signed with the new private key.
 */
export async function signEnrollmentProof(
  newDeviceKey: SigningKeyInput,
  input: SignEnrollmentProofInput,
): Promise<SignedToken<EnrollmentProofClaims>> {
  const claims = {
    jti: input.jti,
    sub: input.deviceId,
    iat: Math.floor((input.now ?? defaultNow)()),
  };
  return signClaims('enrollmentProof', enrollmentProofClaimsSchema, claims, newDeviceKey);
}

/** How old an enrollment proof may be, beyond the clock skew. */
export const DEFAULT_PROOF_MAX_AGE_S = 5 * 60;

export interface VerifyEnrollmentProofOptions extends TimeOptions {
  /** The `publicKey` of the enrollment request, not yet validated. */
  readonly publicJwk: unknown;
  /** The verified enrollment token's claims the proof must repeat. */
  readonly token: Pick<EnrollmentTokenClaims, 'jti' | 'sub'>;
  /** Defaults to `DEFAULT_PROOF_MAX_AGE_S`. */
  readonly maxAgeS?: number;
  readonly maxBytes?: number;
  readonly keyCache?: KeyCache;
}

/**
 * Checks that the enrollment request's key signed the proof for this token and device,
 * recently. The public key is validated first (`key_*` codes); the proof's `kid` must be its
 * thumbprint. The returned `kid` is the one to register for the device.
 */
export async function verifyEnrollmentProof(
  proof: string | Uint8Array,
  options: VerifyEnrollmentProofOptions,
): Promise<VerifiedJwt<EnrollmentProofClaims>> {
  const publicJwk = parsePublicJwk(options.publicJwk);
  return verifyJwt('enrollmentProof', proof, {
    ...options,
    keys: [publicJwk],
    schema: enrollmentProofClaimsSchema,
    requireExp: false,
    maxAgeS: options.maxAgeS ?? DEFAULT_PROOF_MAX_AGE_S,
    checkClaims: (claims) => {
      if (claims.jti !== options.token.jti) {
        fail('enrollmentProof', 'jti_mismatch', 'the proof is for another enrollment token');
      }
      if (claims.sub !== options.token.sub) {
        fail('enrollmentProof', 'subject_mismatch', 'the proof is for another device');
      }
    },
  });
}
