import { SigningError } from './errors.js';
import {
  algorithmOf,
  type PublicJwk,
  parsePrivateJwk,
  parsePublicJwk,
  thumbprint,
} from './keys.js';
import { importSigningKey, type SigningKey } from './sign.js';

/** RFC 7517 §5 JWK Set of signing keys, each with `kid` = its RFC 7638 thumbprint. */
export interface Jwks {
  keys: PublicJwk[];
}

/**
 * Builds the JWKS a verifier is given (PROTOCOL.md §2 step 3: the service JWKS verifies
 * commands). Every key is validated and gets `kid` (its thumbprint), `alg` and `use: "sig"`;
 * a key listed twice appears once.
 */
export async function toJwks(publicJwks: readonly unknown[]): Promise<Jwks> {
  const keys: PublicJwk[] = [];
  const seen = new Set<string>();
  for (const value of publicJwks) {
    const jwk = parsePublicJwk(value);
    const kid = await thumbprint(jwk);
    if (jwk.kid !== undefined && jwk.kid !== kid) {
      throw new SigningError('key_invalid', 'a key\'s "kid" must be its RFC 7638 thumbprint', {
        details: { kid: jwk.kid.slice(0, 64) },
      });
    }
    if (seen.has(kid)) continue;
    seen.add(kid);
    keys.push({ ...jwk, kid, alg: algorithmOf(jwk), use: 'sig' } as PublicJwk);
  }
  return { keys };
}

/** Validates a JWKS received from elsewhere (a reply, a config file); see `toJwks`. */
export async function parseJwks(value: unknown): Promise<Jwks> {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as Jwks).keys)) {
    throw new SigningError('key_invalid', 'a JWKS is an object with a "keys" array');
  }
  return toJwks((value as { keys: unknown[] }).keys);
}

/** The key with this `kid` in a JWKS built by `toJwks` or `parseJwks`. */
export function findJwk(jwks: Jwks, kid: string): PublicJwk | undefined {
  return jwks.keys.find((key) => key.kid === kid);
}

/**
 * The service's signing keys: one active key signs, and the public halves of all of them
 * (active and retiring) are published, so tokens signed before a rotation still verify.
 */
export interface ServiceKeySet {
  readonly active: SigningKey;
  readonly jwks: Jwks;
  /** The signing key with this `kid`, if the set holds it. */
  signingKey(kid: string): SigningKey | undefined;
}

/**
 * Imports the service's private keys. `activeKid` picks the signing key; by default the first.
 */
export async function loadServiceKeySet(
  privateJwks: readonly unknown[],
  activeKid?: string,
): Promise<ServiceKeySet> {
  if (privateJwks.length === 0) {
    throw new SigningError('key_invalid', 'the service key set needs at least one key');
  }
  const signingKeys = await Promise.all(
    privateJwks.map((jwk) => importSigningKey(parsePrivateJwk(jwk))),
  );
  const byKid = new Map(signingKeys.map((key) => [key.kid, key]));
  const active = activeKid === undefined ? signingKeys[0] : byKid.get(activeKid);
  if (active === undefined) {
    throw new SigningError('key_invalid', 'the active kid is not in the service key set');
  }
  const jwks = await toJwks(signingKeys.map((key) => key.publicJwk));
  return { active, jwks, signingKey: (kid) => byKid.get(kid) };
}
