import type { SigningAlgorithm } from '@outpost/protocol/claims';
import { calculateJwkThumbprint, exportJWK, generateKeyPair as joseGenerateKeyPair } from 'jose';
import { isCanonicalBase64url } from './base64url.js';
import { SigningError } from './errors.js';

/** PROTOCOL.md §1: the two key types Outpost accepts, each with exactly one algorithm. */
export type KeyType = 'Ed25519' | 'P-256';

export interface Ed25519PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid?: string;
  alg?: 'EdDSA';
  use?: 'sig';
}

export interface P256PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  kid?: string;
  alg?: 'ES256';
  use?: 'sig';
}

export type PublicJwk = Ed25519PublicJwk | P256PublicJwk;
export type PrivateJwk = (Ed25519PublicJwk & { d: string }) | (P256PublicJwk & { d: string });

export interface KeyPair {
  privateJwk: PrivateJwk;
  publicJwk: PublicJwk;
  /** RFC 7638 thumbprint of the public key (PROTOCOL.md §1). */
  kid: string;
  alg: SigningAlgorithm;
}

/** JWK members holding private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** The algorithm is a property of the key, never of a token header (RFC 8725 §3.1). */
export function algorithmOf(jwk: PublicJwk | PrivateJwk): SigningAlgorithm {
  return jwk.kty === 'OKP' ? 'EdDSA' : 'ES256';
}

/** Generates an exportable key pair; `alg` and `kid` are filled in on both halves. */
export async function generateKeyPair(
  type: KeyType | SigningAlgorithm = 'Ed25519',
): Promise<KeyPair> {
  const alg: SigningAlgorithm = type === 'Ed25519' || type === 'EdDSA' ? 'EdDSA' : 'ES256';
  const pair = await joseGenerateKeyPair(alg, { extractable: true });
  const privateJwk = parsePrivateJwk(await exportJWK(pair.privateKey));
  const publicJwk = publicJwkOf(privateJwk);
  const kid = await thumbprint(publicJwk);
  return {
    privateJwk: { ...privateJwk, kid, alg } as PrivateJwk,
    publicJwk: { ...publicJwk, kid, alg } as PublicJwk,
    kid,
    alg,
  };
}

/** RFC 7638 JWK thumbprint, SHA-256, base64url: the `kid` of every Outpost key. */
export function thumbprint(jwk: PublicJwk | PrivateJwk): Promise<string> {
  // RFC 7638 §3.2: only the required members, so `d` never enters the hash.
  const members =
    jwk.kty === 'OKP'
      ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x }
      : { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  return calculateJwkThumbprint(members, 'sha256');
}

/** The public half of a private JWK, with only the members a public key may carry. */
export function publicJwkOf(privateJwk: PrivateJwk): PublicJwk {
  return normalizeKey(privateJwk as unknown as Record<string, unknown>);
}

/**
 * Checks that `value` is a public key Outpost accepts and returns a normalized copy holding
 * only the key members plus `kid`, `alg` and `use`. Refuses RSA, `oct`, other curves and any
 * JWK carrying private material (`d`, RSA primes, an `oct` secret): a private key where a
 * public one belongs is a leak, reported as such.
 * The curve point itself is checked when the key is imported (see `KeyCache`).
 */
export function parsePublicJwk(value: unknown): PublicJwk {
  const jwk = asJwkObject(value);
  for (const member of PRIVATE_MEMBERS) {
    if (Object.hasOwn(jwk, member)) {
      throw new SigningError(
        'key_private_material',
        `a public key was expected but the JWK has "${member}"`,
        { details: { member } },
      );
    }
  }
  return normalizeKey(jwk);
}

/** Checks that `value` is a private key of a supported type (has `d` of the right size). */
export function parsePrivateJwk(value: unknown): PrivateJwk {
  const jwk = asJwkObject(value);
  const publicJwk = normalizeKey(jwk);
  if (jwk.d === undefined) {
    throw new SigningError('key_not_private', 'a private key was expected but the JWK has no "d"');
  }
  return { ...publicJwk, d: checkCoordinate(jwk.d, 'd') };
}

/** True when `value` is a supported public key; never throws. */
export function isPublicJwk(value: unknown): value is PublicJwk {
  try {
    parsePublicJwk(value);
    return true;
  } catch {
    return false;
  }
}

function asJwkObject(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SigningError('key_invalid', 'a JWK must be a JSON object');
  }
  return value as Record<string, unknown>;
}

interface KeyMetadata<A extends SigningAlgorithm> {
  kid?: string;
  alg?: A;
  use?: 'sig';
}

function normalizeKey(jwk: Record<string, unknown>): PublicJwk {
  const { kty, crv } = jwk;
  if (kty === 'OKP' && crv === 'Ed25519') {
    if (jwk.y !== undefined) throw new SigningError('key_invalid', 'an OKP key has no "y"');
    return { kty, crv, x: checkCoordinate(jwk.x, 'x'), ...metadataOf(jwk, 'EdDSA') };
  }
  if (kty === 'EC' && crv === 'P-256') {
    return {
      kty,
      crv,
      x: checkCoordinate(jwk.x, 'x'),
      y: checkCoordinate(jwk.y, 'y'),
      ...metadataOf(jwk, 'ES256'),
    };
  }
  // PROTOCOL.md §1: Ed25519 and P-256 only; no RSA, no symmetric keys, no other curves.
  throw new SigningError('key_unsupported', 'only OKP/Ed25519 and EC/P-256 keys are accepted', {
    details: {
      kty: typeof kty === 'string' ? kty : null,
      crv: typeof crv === 'string' ? crv : null,
    },
  });
}

function metadataOf<A extends SigningAlgorithm>(
  jwk: Record<string, unknown>,
  alg: A,
): KeyMetadata<A> {
  const metadata: KeyMetadata<A> = {};
  if (jwk.kid !== undefined) {
    if (typeof jwk.kid !== 'string' || jwk.kid.length === 0) {
      throw new SigningError('key_invalid', '"kid" must be a non-empty string');
    }
    metadata.kid = jwk.kid;
  }
  if (jwk.alg !== undefined) {
    if (jwk.alg !== alg)
      throw new SigningError('key_invalid', `this key type must have "alg" ${alg}`);
    metadata.alg = alg;
  }
  if (jwk.use !== undefined) {
    if (jwk.use !== 'sig')
      throw new SigningError('key_invalid', 'a signing key must have "use" sig');
    metadata.use = 'sig';
  }
  return metadata;
}

function checkCoordinate(value: unknown, member: string): string {
  // Both key types use 32-byte coordinates and scalars: 43 canonical base64url characters.
  if (typeof value !== 'string' || value.length !== 43 || !isCanonicalBase64url(value)) {
    throw new SigningError('key_invalid', `"${member}" must be 32 bytes of base64url`);
  }
  return value;
}
