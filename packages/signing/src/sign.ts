import type { SigningAlgorithm, TokenKind } from '@outpost/protocol/claims';
import { TOKEN_TYPES } from '@outpost/protocol/claims';
import { CompactSign, type CryptoKey, importJWK } from 'jose';
import { SigningError } from './errors.js';
import {
  algorithmOf,
  type PrivateJwk,
  type PublicJwk,
  parsePrivateJwk,
  publicJwkOf,
  thumbprint,
} from './keys.js';
import { type PayloadSchema, parseWithSchema } from './verify.js';

/** A private key imported once for signing, with the `kid` every signature names. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly key: CryptoKey;
  readonly publicJwk: PublicJwk;
}

/** An imported key, or a private JWK that is imported for this one signature. */
export type SigningKeyInput = SigningKey | PrivateJwk;

/** Validates and imports a private JWK (non-extractable), computing its `kid`. */
export async function importSigningKey(privateJwk: unknown): Promise<SigningKey> {
  const jwk = parsePrivateJwk(privateJwk);
  const alg = algorithmOf(jwk);
  const members =
    jwk.kty === 'OKP'
      ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d }
      : { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d };
  let key: CryptoKey;
  try {
    key = await importJWK(members, alg);
  } catch (cause) {
    throw new SigningError('key_invalid', 'the private key cannot be imported', { cause });
  }
  const publicJwk = publicJwkOf(jwk);
  return { kid: await thumbprint(publicJwk), alg, key, publicJwk };
}

export function toSigningKey(input: SigningKeyInput): Promise<SigningKey> {
  // Anything JWK-shaped goes through validation, so a public key fails as `key_not_private`.
  return 'kty' in input ? importSigningKey(input) : Promise.resolve(input);
}

/**
 * Signs `payload` as a compact JWS of `kind` with the header `{alg, kid, typ}` (PROTOCOL.md §3)
 * and nothing else. The algorithm comes from the key.
 */
export async function signJws(
  kind: TokenKind,
  payload: Uint8Array,
  key: SigningKeyInput,
): Promise<string> {
  const signer = await toSigningKey(key);
  return new CompactSign(payload)
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: TOKEN_TYPES[kind] })
    .sign(signer.key);
}

const utf8 = new TextEncoder();

/** Signs a JSON payload (JWT claims or a JWS message) as a compact JWS of `kind`. */
export async function signJson(
  kind: TokenKind,
  payload: unknown,
  key: SigningKeyInput,
): Promise<string> {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (cause) {
    throw new SigningError('payload_invalid', 'the payload cannot be serialized as JSON', {
      cause,
    });
  }
  if (json === undefined) {
    throw new SigningError('payload_invalid', 'the payload cannot be serialized as JSON');
  }
  return signJws(kind, utf8.encode(json), key);
}

/** A freshly signed JWT with the claims it carries (e.g. to store its `jti`). */
export interface SignedToken<C> {
  readonly token: string;
  readonly claims: C;
}

/** Signs JWT claims after checking them with the verifier's own schema, so bad input fails early. */
export async function signClaims<T>(
  kind: TokenKind,
  schema: PayloadSchema<T>,
  claims: unknown,
  key: SigningKeyInput,
): Promise<SignedToken<T>> {
  const checked = parseWithSchema(kind, schema, claims, 'claims_invalid');
  return { token: await signJson(kind, checked, key), claims: checked };
}

/** A fresh `jti`: a random UUID (122 random bits), within the 8–128 characters claims allow. */
export function randomJti(): string {
  return globalThis.crypto.randomUUID();
}
