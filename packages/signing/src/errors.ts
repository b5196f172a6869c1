import { AppError, type AppErrorOptions, type ErrorKind } from '@outpost/protocol/errors';

/**
 * Every way signing and verification can fail, each with a stable code and a fixed kind.
 *
 * `invalid` means the input is not even a well-formed token or key of ours; `unauthenticated`
 * means it is well formed but cannot be trusted (wrong algorithm, key, signature, audience,
 * subject, time or reuse). A transport that receives a credential (MQTT password, bearer token,
 * enrollment token) treats every `SigningError` as an authentication failure whatever its kind.
 */
export const SIGNING_ERROR_KINDS = {
  // Form: checked before any key is touched.
  token_too_large: 'invalid',
  token_malformed: 'invalid',
  crit_unsupported: 'invalid',
  b64_unsupported: 'invalid',
  // Header trust (RFC 8725 §3.1, §3.10, §3.11).
  alg_not_allowed: 'unauthenticated',
  alg_key_mismatch: 'unauthenticated',
  typ_mismatch: 'unauthenticated',
  key_header_refused: 'unauthenticated',
  kid_missing: 'unauthenticated',
  kid_unknown: 'unauthenticated',
  kid_mismatch: 'unauthenticated',
  signature_invalid: 'unauthenticated',
  // Claims and payload.
  claims_invalid: 'invalid',
  payload_invalid: 'invalid',
  exp_missing: 'unauthenticated',
  iat_missing: 'unauthenticated',
  aud_mismatch: 'unauthenticated',
  iss_mismatch: 'unauthenticated',
  iss_sub_mismatch: 'unauthenticated',
  subject_mismatch: 'unauthenticated',
  jti_mismatch: 'unauthenticated',
  token_expired: 'unauthenticated',
  token_not_yet_valid: 'unauthenticated',
  iat_in_future: 'unauthenticated',
  iat_too_old: 'unauthenticated',
  lifetime_exceeded: 'unauthenticated',
  jti_replayed: 'unauthenticated',
  // Keys handed to us (registry, enrollment request, config).
  key_unsupported: 'invalid',
  key_private_material: 'invalid',
  key_not_private: 'invalid',
  key_invalid: 'invalid',
} as const satisfies Record<string, ErrorKind>;

export type SigningErrorCode = keyof typeof SIGNING_ERROR_KINDS;

export const SIGNING_ERROR_CODES = Object.keys(SIGNING_ERROR_KINDS) as SigningErrorCode[];

export class SigningError extends AppError {
  declare readonly code: SigningErrorCode;

  constructor(code: SigningErrorCode, message: string, options: AppErrorOptions = {}) {
    super(SIGNING_ERROR_KINDS[code], code, message, options);
  }
}

export function isSigningError(err: unknown, code?: SigningErrorCode): err is SigningError {
  return err instanceof SigningError && (code === undefined || err.code === code);
}
