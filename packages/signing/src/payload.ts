import type { SigningAlgorithm, TokenKind } from '@outpost/protocol/claims';
import {
  type PayloadSchema,
  parseWithSchema,
  type TrustedKey,
  type VerifiedJws,
} from './verify.js';

/** A verified JWS message (batch, manifest, command): its JSON payload and signing key. */
export interface VerifiedPayload<T> {
  readonly payload: T;
  /** The `kid` of the key that verified the signature. */
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly key: TrustedKey;
}

export function verifiedPayload<T>(verified: VerifiedJws, payload: T): VerifiedPayload<T> {
  return { payload, kid: verified.kid, alg: verified.alg, key: verified.key };
}

/** Applies the caller's schema, if any (`payload_invalid`). */
export function checkPayload<T>(
  kind: TokenKind,
  schema: PayloadSchema<T> | undefined,
  value: unknown,
): unknown {
  return schema === undefined ? value : parseWithSchema(kind, schema, value, 'payload_invalid');
}
