import { verify as cryptoVerify } from 'node:crypto';
import {
  SIGNING_ALGORITHMS,
  type SigningAlgorithm,
  TOKEN_TYPES,
  type TokenKind,
} from '@outpost/protocol/claims';
import { CLOCK_SKEW_S, MAX_TOKEN_BYTES } from '@outpost/protocol/limits';
import { decodeBase64url, decodeCanonicalBase64url, isCanonicalBase64url } from './base64url.js';
import { SigningError, type SigningErrorCode } from './errors.js';
import { defaultKeyCache, type ImportedKey, type KeyCache } from './key-cache.js';
import type { PublicJwk } from './keys.js';
import type { ReplayCache } from './replay-cache.js';
import { parseStrictJson } from './strict-json.js';

/**
 * The one verifier behind every token kind. It enforces RFC 8725 in this order, so that the
 * cheap and key-independent checks come first and no key is touched for a token that is not
 * even of the expected kind:
 *
 * 1. size (`token_too_large`) before anything is parsed;
 * 2. compact form: exactly three non-empty, canonical base64url segments (`token_malformed`);
 *    JWE (five parts), JSON serialization, padding and whitespace are refused;
 * 3. protected header, strict UTF-8 JSON object without duplicate names (`token_malformed`;
 *    RFC 8725 §3.7, RFC 7515 §5.2), then
 *    `alg` in the allow-list by exact match (`alg_not_allowed`; RFC 8725 §3.1), `typ` equal to
 *    the kind's `TOKEN_TYPES` value (`typ_mismatch`; RFC 8725 §3.11), no `b64`
 *    (`b64_unsupported`; RFC 7797), no `crit` (`crit_unsupported`; we understand no extension,
 *    RFC 7515 §4.1.11), no key-locating header (`key_header_refused`, see below), a `kid`
 *    (`kid_missing`) shaped like a thumbprint (`kid_unknown`);
 * 4. keys come only from the caller's key source, which is asked with the `kid` and the
 *    header: none at all is `kid_unknown`; keys but none whose RFC 7638 thumbprint equals the
 *    `kid` is `kid_mismatch`; several keys are fine (rotation);
 * 5. the algorithm is derived from the matched key, and the header's `alg` must equal it
 *    (`alg_key_mismatch`): Ed25519 ⇒ EdDSA, P-256 ⇒ ES256;
 * 6. the signature (`signature_invalid`), by `node:crypto` on the threadpool with the key
 *    imported once in the `KeyCache`: the same OpenSSL checks as WebCrypto, without its
 *    per-call dispatch on the event loop. ES256 signatures are R || S (RFC 7518 §3.4).
 *
 * Key-locating headers (`jwk`, `jku`, `x5u`, `x5c`, `x5t`, `x5t#S256`) are refused outright,
 * not merely ignored. They are never used to pick a key, whatever their content, but no
 * Outpost token carries them, so their presence only ever means a misbehaving signer or an
 * attempt to have some verifier trust a key the token brings along (RFC 8725 §3.10).
 *
 * `verifyJwt` adds claims: strict JSON object, `exp`/`iat` required by default, the kind's
 * schema (`claims_invalid`), time with clock skew, lifetime, issuer, audience, subject binding
 * and finally the replay cache, so that a token refused for any other reason never uses up
 * its `jti`.
 */

export interface JwsHeader {
  readonly alg: SigningAlgorithm;
  readonly kid: string;
  readonly typ: string;
  readonly [member: string]: unknown;
}

/** A key the caller trusts, optionally bound to the subject (device id) it belongs to. */
export interface TrustedKey {
  readonly jwk: PublicJwk;
  /** When set, a JWT verified with this key must have `sub` equal to it. */
  readonly subject?: string;
}

/**
 * Returns the keys registered for whoever may have signed the token: for a device JWT on an
 * MQTT connection, the keys of the device named by the username; for a bearer token, the key
 * registered under `kid`. Several keys are allowed during rotation. Throwing (for instance a
 * `device_revoked` error) aborts verification with that error.
 */
export type KeyResolver = (
  kid: string,
  header: JwsHeader,
) => Promise<readonly (TrustedKey | PublicJwk)[]> | readonly (TrustedKey | PublicJwk)[];

/** A resolver, a fixed list of keys, or a JWKS. */
export type KeySource =
  | KeyResolver
  | readonly (TrustedKey | PublicJwk)[]
  | { readonly keys: readonly PublicJwk[] };

export interface VerifyJwsOptions {
  readonly keys: KeySource;
  /** Largest accepted token in bytes; defaults to `MAX_TOKEN_BYTES`. */
  readonly maxBytes?: number;
  /** Defaults to the process-wide `defaultKeyCache`. */
  readonly keyCache?: KeyCache;
}

export interface VerifiedJws {
  readonly header: JwsHeader;
  readonly payload: Uint8Array;
  /** The `kid` of the key that verified the signature. */
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  /** The key that verified the signature, as the key source returned it. */
  readonly key: TrustedKey;
}

export interface TimeOptions {
  /** Current time in epoch seconds. */
  readonly now?: () => number;
  /** Allowed clock difference in seconds; defaults to `CLOCK_SKEW_S` (PROTOCOL.md §3). */
  readonly clockSkewS?: number;
}

/** The subset of a zod schema the verifier needs. */
export interface PayloadSchema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: unknown };
}

export interface VerifyJwtOptions<T> extends VerifyJwsOptions, TimeOptions {
  readonly schema: PayloadSchema<T>;
  /** When set, `aud` (a string or an array) must contain it. */
  readonly audience?: string;
  /** When set, `iss` must equal it. */
  readonly issuer?: string;
  /** Defaults to true. */
  readonly requireExp?: boolean;
  /** Defaults to true. */
  readonly requireIat?: boolean;
  /** Largest `exp - iat` accepted. */
  readonly maxLifetimeS?: number;
  /** Largest age (`now - iat`) accepted, beyond the clock skew. */
  readonly maxAgeS?: number;
  /** When given, each `jti` is accepted once until its token expires. */
  readonly replayCache?: ReplayCache;
  /** Kind-specific checks, run after the generic ones and before the replay cache. */
  readonly checkClaims?: (claims: T, key: TrustedKey) => void;
}

export interface VerifiedJwt<T> {
  readonly claims: T;
  readonly header: JwsHeader;
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly key: TrustedKey;
}

const ALLOWED_ALGORITHMS: ReadonlySet<string> = new Set(SIGNING_ALGORITHMS);
/** RFC 7515 §4.1.2–4.1.8: header parameters that point at or carry a key. */
const KEY_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'] as const;
/** A SHA-256 thumbprint: 32 bytes of canonical base64url, so 43 characters. */
const THUMBPRINT = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const ascii = new TextDecoder('utf-8', { fatal: true });

export function defaultNow(): number {
  return Math.floor(Date.now() / 1000);
}

export function fail(
  kind: TokenKind,
  code: SigningErrorCode,
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): never {
  throw new SigningError(code, message, {
    details: { tokenKind: kind, ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Verifies a compact JWS of `kind` and returns its header, payload bytes and key. */
export async function verifyJws(
  kind: TokenKind,
  token: string | Uint8Array,
  options: VerifyJwsOptions,
): Promise<VerifiedJws> {
  const text = compactText(kind, token, options.maxBytes ?? MAX_TOKEN_BYTES);
  const parts = text.split('.');
  if (parts.length !== 3) {
    fail(kind, 'token_malformed', 'a compact JWS has exactly three parts', {
      parts: Math.min(parts.length, 16),
    });
  }
  const [encodedHeader, encodedPayload, signature] = parts as [string, string, string];
  const header = parseHeader(kind, encodedHeader);
  // RFC 7515 §7.1; an empty payload would be a detached JWS, which no Outpost token is.
  const payload =
    encodedPayload.length === 0 ? undefined : decodeCanonicalBase64url(encodedPayload);
  if (payload === undefined) {
    fail(kind, 'token_malformed', 'the payload is not canonical base64url');
  }
  const signatureBytes = signature.length === 0 ? undefined : decodeCanonicalBase64url(signature);
  if (signatureBytes === undefined) {
    fail(kind, 'token_malformed', 'the signature is not canonical base64url');
  }

  const { imported, trusted } = await selectKey(kind, header, options);
  if (imported.alg !== header.alg) {
    // RFC 8725 §3.1: the key decides the algorithm; the header may only agree with it.
    fail(
      kind,
      'alg_key_mismatch',
      `the key requires ${imported.alg}, the header says ${header.alg}`,
    );
  }

  // RFC 7515 §5.2: the signing input is the ASCII of `header.payload`, a prefix of the token
  // (both segments were checked to be base64url, so bytes and characters line up).
  const inputLength = encodedHeader.length + 1 + encodedPayload.length;
  const signingInput =
    typeof token === 'string'
      ? Buffer.from(text.slice(0, inputLength), 'latin1')
      : token.subarray(0, inputLength);
  if (!(await signatureValid(imported, signingInput, signatureBytes))) {
    fail(kind, 'signature_invalid', 'the signature does not verify', { kid: imported.kid });
  }
  return { header, payload, kid: imported.kid, alg: imported.alg, key: trusted };
}

/**
 * The signature check on the threadpool. False for a signature that does not verify, whatever
 * the reason (wrong length, not on the curve, a crypto error), as WebCrypto answers.
 */
function signatureValid(
  imported: ImportedKey,
  data: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (err: Error | null, valid: boolean) => resolve(err === null && valid);
    try {
      if (imported.alg === 'EdDSA') {
        cryptoVerify(null, data, imported.keyObject, signature, done);
      } else {
        cryptoVerify(
          'sha256',
          data,
          { key: imported.keyObject, dsaEncoding: 'ieee-p1363' },
          signature,
          done,
        );
      }
    } catch {
      resolve(false);
    }
  });
}

/** Verifies a JWT of `kind`: `verifyJws`, then its claims (see the module comment). */
export async function verifyJwt<T>(
  kind: TokenKind,
  token: string | Uint8Array,
  options: VerifyJwtOptions<T>,
): Promise<VerifiedJwt<T>> {
  const { header, payload, kid, alg, key } = await verifyJws(kind, token, options);
  const raw = parseJsonObject(kind, payload, 'claims');
  // Checked before the schema so a missing time claim gets its own code.
  if ((options.requireExp ?? true) && !Object.hasOwn(raw, 'exp')) {
    fail(kind, 'exp_missing', 'the token has no "exp"');
  }
  if ((options.requireIat ?? true) && !Object.hasOwn(raw, 'iat')) {
    fail(kind, 'iat_missing', 'the token has no "iat"');
  }
  const claims = parseWithSchema(kind, options.schema, raw, 'claims_invalid');

  // Registered claims are read from the token as sent, not from the schema's output: a schema
  // that does not list `exp` (or strips it) must not make the verifier ignore it.
  const now = (options.now ?? defaultNow)();
  const skew = options.clockSkewS ?? CLOCK_SKEW_S;
  const exp = numericClaim(kind, raw, 'exp');
  const iat = numericClaim(kind, raw, 'iat');
  const nbf = numericClaim(kind, raw, 'nbf');
  checkTime(kind, { exp, iat, nbf }, now, skew, options);

  // RFC 8725 §3.8
  if (options.issuer !== undefined && raw.iss !== options.issuer) {
    fail(kind, 'iss_mismatch', 'the token was issued by someone else');
  }
  if (options.audience !== undefined && !audienceIncludes(raw.aud, options.audience)) {
    // RFC 8725 §3.9, RFC 7519 §4.1.3
    fail(kind, 'aud_mismatch', 'the token is meant for another audience');
  }
  options.checkClaims?.(claims, key);
  if (key.subject !== undefined && raw.sub !== key.subject) {
    fail(kind, 'subject_mismatch', 'the token is about another subject than its key belongs to');
  }

  if (options.replayCache !== undefined) {
    const { jti } = raw;
    if (typeof jti !== 'string' || jti.length === 0) {
      fail(kind, 'claims_invalid', 'replay protection needs "jti"');
    }
    const expiresAt = replayHorizon({ exp, iat }, now, skew, options);
    if (!(await options.replayCache.checkAndRemember(jti, expiresAt))) {
      fail(kind, 'jti_replayed', 'the token was used before');
    }
  }
  return { claims, header, kid, alg, key };
}

/** Strict JSON (no duplicate names), and a plain object; `token_malformed` otherwise. */
export function parseJsonObject(
  kind: TokenKind,
  bytes: Uint8Array,
  what: string,
): Record<string, unknown> {
  const value = parseJsonPayload(kind, bytes, what);
  if (!isPlainObject(value)) fail(kind, 'token_malformed', `the ${what} must be a JSON object`);
  return value;
}

/** Strict JSON of any shape; `token_malformed` otherwise. */
export function parseJsonPayload(kind: TokenKind, bytes: Uint8Array, what: string): unknown {
  const parsed = parseStrictJson(bytes);
  if (!parsed.ok) fail(kind, 'token_malformed', `the ${what} is not valid JSON: ${parsed.reason}`);
  return parsed.value;
}

export function parseWithSchema<T>(
  kind: TokenKind,
  schema: PayloadSchema<T>,
  value: unknown,
  code: 'claims_invalid' | 'payload_invalid',
): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    fail(
      kind,
      code,
      code === 'claims_invalid' ? 'the claims are invalid' : 'the payload is invalid',
      {
        issues: describeIssues(result.error),
      },
    );
  }
  return result.data;
}

function compactText(kind: TokenKind, token: string | Uint8Array, maxBytes: number): string {
  // Before any parsing: jose itself has no size limit (ENVIRONMENT.md).
  const size = typeof token === 'string' ? token.length : token.byteLength;
  if (size > maxBytes) {
    fail(kind, 'token_too_large', `the token exceeds ${maxBytes} bytes`, { maxBytes });
  }
  if (typeof token === 'string') return token;
  try {
    return ascii.decode(token);
  } catch {
    return fail(kind, 'token_malformed', 'the token is not text');
  }
}

function parseHeader(kind: TokenKind, encoded: string): JwsHeader {
  if (encoded.length === 0 || !isCanonicalBase64url(encoded)) {
    fail(kind, 'token_malformed', 'the header is not canonical base64url');
  }
  const header = parseJsonObject(kind, decodeBase64url(encoded), 'header');
  const { alg, typ, kid } = header;
  // RFC 8725 §3.1: an exact-match allow-list, so `none`, `NONE`, `HS256`, `RS256` all fail.
  if (typeof alg !== 'string' || !ALLOWED_ALGORITHMS.has(alg)) {
    fail(kind, 'alg_not_allowed', 'the algorithm is not allowed', {
      alg: typeof alg === 'string' ? alg.slice(0, 32) : null,
    });
  }
  // RFC 8725 §3.11: explicit typing keeps one kind of token from being used as another.
  if (!typMatches(typ, TOKEN_TYPES[kind])) {
    fail(kind, 'typ_mismatch', `expected typ ${TOKEN_TYPES[kind]}`, {
      typ: typeof typ === 'string' ? typ.slice(0, 64) : null,
    });
  }
  // RFC 7797 §6: an unencoded payload changes what is signed; never supported here.
  if (Object.hasOwn(header, 'b64')) {
    fail(kind, 'b64_unsupported', 'the "b64" header parameter is not supported');
  }
  // RFC 7515 §4.1.11: we understand no extension, so any `crit` must be refused.
  if (Object.hasOwn(header, 'crit')) {
    fail(kind, 'crit_unsupported', 'the "crit" header parameter is not supported');
  }
  for (const name of KEY_HEADERS) {
    if (Object.hasOwn(header, name)) {
      fail(kind, 'key_header_refused', `the "${name}" header parameter is refused`, {
        parameter: name,
      });
    }
  }
  if (typeof kid !== 'string' || kid.length === 0) {
    fail(kind, 'kid_missing', 'the header has no "kid"');
  }
  // RFC 8725 §3.10: the kid reaches the caller's key lookup, so only a well-formed thumbprint
  // (PROTOCOL.md §1) gets that far; nothing else can name a registered key anyway.
  if (!THUMBPRINT.test(kid)) {
    fail(kind, 'kid_unknown', 'the kid is not an RFC 7638 thumbprint');
  }
  return header as JwsHeader;
}

/** RFC 7515 §4.1.9: `typ` compares case-insensitively and may omit `application/`. */
function typMatches(typ: unknown, expected: string): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  const bare = lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
  return bare === expected.toLowerCase();
}

async function selectKey(
  kind: TokenKind,
  header: JwsHeader,
  options: VerifyJwsOptions,
): Promise<{ imported: ImportedKey; trusted: TrustedKey }> {
  const source = options.keys;
  const candidates =
    typeof source === 'function'
      ? await source(header.kid, header)
      : Array.isArray(source)
        ? (source as readonly (TrustedKey | PublicJwk)[])
        : (source as { readonly keys: readonly PublicJwk[] }).keys;
  if (candidates.length === 0) {
    fail(kind, 'kid_unknown', 'no key is registered for this token');
  }
  const cache = options.keyCache ?? defaultKeyCache;
  for (const candidate of candidates) {
    const trusted: TrustedKey = 'jwk' in candidate ? candidate : { jwk: candidate };
    // The kid is always recomputed from the key material, never read from the JWK.
    const imported = await cache.get(trusted.jwk);
    if (imported.kid === header.kid) return { imported, trusted };
  }
  return fail(kind, 'kid_mismatch', 'the kid is not one of the registered keys');
}

function numericClaim(
  kind: TokenKind,
  claims: Record<string, unknown>,
  name: 'exp' | 'iat' | 'nbf',
): number | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  // RFC 7519 §2 NumericDate.
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    fail(kind, 'claims_invalid', `"${name}" must be a NumericDate`);
  }
  return value;
}

interface TimeClaims {
  exp: number | undefined;
  iat: number | undefined;
  nbf: number | undefined;
}

function checkTime(
  kind: TokenKind,
  { exp, iat, nbf }: TimeClaims,
  now: number,
  skew: number,
  options: Pick<VerifyJwtOptions<unknown>, 'maxLifetimeS' | 'maxAgeS'>,
): void {
  if (exp !== undefined && iat !== undefined && exp <= iat) {
    fail(kind, 'claims_invalid', '"exp" must be after "iat"');
  }
  // RFC 7519 §4.1.4: refused on or after exp; the skew widens the window on both sides.
  if (exp !== undefined && now - skew >= exp) {
    fail(kind, 'token_expired', 'the token has expired', { exp, now });
  }
  // RFC 7519 §4.1.5
  if (nbf !== undefined && nbf > now + skew) {
    fail(kind, 'token_not_yet_valid', 'the token is not valid yet', { nbf, now });
  }
  if (iat !== undefined && iat > now + skew) {
    fail(kind, 'iat_in_future', 'the token was issued in the future', { iat, now });
  }
  if (options.maxLifetimeS !== undefined) {
    const lifetime = exp === undefined ? Number.POSITIVE_INFINITY : exp - (iat ?? now);
    if (lifetime > options.maxLifetimeS) {
      fail(kind, 'lifetime_exceeded', `the token lives longer than ${options.maxLifetimeS} s`, {
        maxLifetimeS: options.maxLifetimeS,
      });
    }
  }
  if (options.maxAgeS !== undefined && iat !== undefined && now - iat > options.maxAgeS + skew) {
    fail(kind, 'iat_too_old', `the token is older than ${options.maxAgeS} s`, { iat, now });
  }
}

/** How long a `jti` must be remembered: until its token can no longer verify anyway. */
function replayHorizon(
  { exp, iat }: Pick<TimeClaims, 'exp' | 'iat'>,
  now: number,
  skew: number,
  options: Pick<VerifyJwtOptions<unknown>, 'maxLifetimeS' | 'maxAgeS'>,
): number {
  if (exp !== undefined) return exp + skew;
  if (iat !== undefined && options.maxAgeS !== undefined) return iat + options.maxAgeS + skew;
  if (options.maxLifetimeS !== undefined) return now + options.maxLifetimeS + skew;
  return Number.POSITIVE_INFINITY;
}

function audienceIncludes(aud: unknown, expected: string): boolean {
  if (typeof aud === 'string') return aud === expected;
  return Array.isArray(aud) && aud.includes(expected);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeIssues(error: unknown): { path: string; message: string }[] {
  if (!isPlainObject(error) && !(error instanceof Error)) return [];
  const issues = (error as { issues?: unknown }).issues;
  if (!Array.isArray(issues)) return [];
  return issues.slice(0, 8).map((issue: unknown) => {
    const { path, message } = (isPlainObject(issue) ? issue : {}) as {
      path?: unknown;
      message?: unknown;
    };
    return {
      path: Array.isArray(path) ? path.map(String).join('.') : '',
      message: typeof message === 'string' ? message.slice(0, 200) : 'invalid',
    };
  });
}
