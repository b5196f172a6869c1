import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signApiToken, verifyApiToken } from './api-token.js';
import { verifyBatch } from './batch.js';
import { signCommand, verifyCommand } from './command.js';
import { signDeviceJwt, verifyDeviceJwt } from './device-jwt.js';
import {
  signEnrollmentProof,
  signEnrollmentToken,
  verifyEnrollmentProof,
  verifyEnrollmentToken,
} from './enrollment.js';
import type { SigningErrorCode } from './errors.js';
import { b64u, craft, craftHs256, partsOf, segmentOf } from './fixtures/craft.js';
import { KeyCache } from './key-cache.js';
import { generateKeyPair, type PublicJwk } from './keys.js';
import { signManifest, verifyManifest } from './manifest.js';
import { MemoryReplayCache } from './replay-cache.js';
import type { TrustedKey } from './verify.js';

/**
 * Each attack token carries exactly one defect and is otherwise built like a valid token:
 * signed by the legitimate key wherever the attack does not depend on the signature. The
 * "controls" below show the untampered versions verify, so every row exercises its check.
 */

const T = 1_700_000_000;
const now = () => T;
const keyCache = new KeyCache();

const device = await generateKeyPair('Ed25519'); // dev-1
const rotated = await generateKeyPair('Ed25519'); // dev-1's second key during rotation
const ecDevice = await generateKeyPair('P-256'); // dev-ec
const otherDevice = await generateKeyPair('Ed25519'); // dev-2
const attacker = await generateKeyPair('Ed25519'); // registered nowhere
const service = await generateKeyPair('Ed25519');
const release = await generateKeyPair('Ed25519');
const newDeviceKey = await generateKeyPair('P-256'); // made during enrollment

const registry = new Map<string, PublicJwk[]>([
  ['dev-1', [device.publicJwk, rotated.publicJwk]],
  ['dev-ec', [ecDevice.publicJwk]],
  ['dev-2', [otherDevice.publicJwk]],
]);

/** An MQTT connection: the username names the device whose keys may sign. */
function mqtt(username: string) {
  return {
    keys: () => registry.get(username) ?? [],
    deviceId: username,
    now,
    keyCache,
  };
}

/** A bearer token over HTTP: the key is looked up by kid, bound to its device. */
const bearer = {
  keys: (kid: string): TrustedKey[] =>
    [...registry].flatMap(([id, keys]) =>
      keys.filter((jwk) => jwk.kid === kid).map((jwk) => ({ jwk, subject: id })),
    ),
  now,
  keyCache,
};

const claims = {
  iss: 'dev-1',
  sub: 'dev-1',
  aud: 'outpost',
  iat: T - 10,
  exp: T + 3600,
  jti: 'jti-0001-abcdef',
};
const header = { alg: 'EdDSA', kid: device.kid, typ: 'JWT' };
const ecHeader = { alg: 'ES256', kid: ecDevice.kid, typ: 'JWT' };
const ecClaims = { ...claims, iss: 'dev-ec', sub: 'dev-ec' };

function without<T extends Record<string, unknown>>(value: T, name: keyof T): Partial<T> {
  const { [name]: _dropped, ...rest } = value;
  return rest as Partial<T>;
}

/** A device JWT for dev-1 with patched header/claims, signed by dev-1's key. */
function deviceToken(
  patch: { header?: Record<string, unknown>; claims?: Record<string, unknown> } = {},
  key = device.privateJwk,
): string {
  return craft({
    header: { ...header, ...patch.header },
    payload: { ...claims, ...patch.claims },
    key,
  });
}

const verifyAsDev1 = (token: string) => verifyDeviceJwt(token, mqtt('dev-1'));
const verifyAsDevEc = (token: string) => verifyDeviceJwt(token, mqtt('dev-ec'));
const verifyBearer = (token: string) => verifyDeviceJwt(token, bearer);

// Service-issued tokens.
const serviceKeys = [service.publicJwk];
const enrollment = await signEnrollmentToken(service.privateJwk, {
  issuer: 'outpost',
  deviceId: 'dev-3',
  now,
});
const apiToken = await signApiToken(service.privateJwk, {
  issuer: 'outpost',
  subject: 'alice',
  roles: ['technician'],
  ttlS: 3600,
  now,
});
const verifyAsEnrollment = (token: string) =>
  verifyEnrollmentToken(token, { keys: serviceKeys, now, keyCache });

// Enrollment proof of possession.
const proofClaims = { jti: enrollment.claims.jti, sub: 'dev-3', iat: T - 5 };
const proofHeader = { alg: 'ES256', kid: newDeviceKey.kid, typ: 'outpost-proof+jwt' };
const verifyProof =
  (publicJwk: unknown = newDeviceKey.publicJwk) =>
  (token: string) =>
    verifyEnrollmentProof(token, { publicJwk, token: enrollment.claims, now, keyCache });

// Manifests and commands.
const manifest = {
  name: 'sensor-fw',
  component: 'main',
  version: '1.4.2',
  hardware: ['esp32'],
  size: 1024,
  sha256: 'a'.repeat(64),
  createdAt: T,
};
const manifestHeader = { alg: 'EdDSA', kid: release.kid, typ: 'outpost-manifest+jws' };
const verifyAsManifest = (token: string) =>
  verifyManifest(token, { trustedKeys: [release.publicJwk], keyCache });
const command = {
  v: 1,
  id: 'd1b8f6c2-8a51-4c53-9d5e-2f0a3c4b5d6e',
  type: 'ping',
  exp: T + 300,
  device: 'dev-1',
};
const commandHeader = { alg: 'EdDSA', kid: service.kid, typ: 'outpost-command+jws' };
const verifyAsCommand = (token: string) =>
  verifyCommand(token, { keys: { keys: serviceKeys }, deviceId: 'dev-1', now, keyCache });

function rs256Token(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const input = `${segmentOf({ ...header, alg: 'RS256' })}.${segmentOf(claims)}`;
  return `${input}.${b64u(sign('sha256', Buffer.from(input), privateKey))}`;
}

function withSignature(token: string, signature: string): string {
  const [h, p] = partsOf(token);
  return `${h}.${p}.${signature}`;
}

/** Same bytes, different string: flips the unused low bits of the last character. */
function nonCanonical(segment: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(segment.charAt(segment.length - 1));
  return segment.slice(0, -1) + alphabet.charAt(last | 1);
}

const validA = deviceToken();
const validB = deviceToken({ claims: { jti: 'jti-0002-abcdef', exp: T + 1800 } });
const validRotated = deviceToken({ header: { kid: rotated.kid } }, rotated.privateJwk);
const ecPoint = Buffer.concat([
  Buffer.from([4]),
  Buffer.from(ecDevice.publicJwk.kty === 'EC' ? ecDevice.publicJwk.x : '', 'base64url'),
  Buffer.from(ecDevice.publicJwk.kty === 'EC' ? ecDevice.publicJwk.y : '', 'base64url'),
]);

interface Attack {
  name: string;
  token: string;
  expectCode: SigningErrorCode;
  /** Defaults to a device JWT verified on dev-1's MQTT connection. */
  verify?: (token: string) => Promise<unknown>;
}

const attacks: Attack[] = [
  // Algorithm (RFC 8725 §2.1, §3.1).
  {
    name: 'alg none with empty signature',
    token: `${segmentOf({ ...header, alg: 'none' })}.${segmentOf(claims)}.`,
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'alg NONE (case variant)',
    token: `${segmentOf({ ...header, alg: 'NONE' })}.${segmentOf(claims)}.`,
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'alg nOnE (case variant)',
    token: `${segmentOf({ ...header, alg: 'nOnE' })}.${segmentOf(claims)}.`,
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'alg none carrying a real EdDSA signature',
    token: deviceToken({ header: { alg: 'none' } }),
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'alg missing',
    token: craft({ header: without(header, 'alg'), payload: claims, key: device.privateJwk }),
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'alg eddsa (lower case)',
    token: deviceToken({ header: { alg: 'eddsa' } }),
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'HS256 keyed with the public JWK JSON',
    token: craftHs256({ ...header, alg: 'HS256' }, claims, JSON.stringify(device.publicJwk)),
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'HS256 keyed with the raw Ed25519 public key bytes',
    token: craftHs256(
      { ...header, alg: 'HS256' },
      claims,
      Buffer.from(device.publicJwk.x, 'base64url'),
    ),
    expectCode: 'alg_not_allowed',
  },
  {
    name: 'HS256 keyed with the P-256 public point',
    token: craftHs256({ ...ecHeader, alg: 'HS256' }, ecClaims, ecPoint),
    expectCode: 'alg_not_allowed',
    verify: verifyAsDevEc,
  },
  {
    name: 'HS512 keyed with the public JWK JSON',
    token: craftHs256({ ...header, alg: 'HS512' }, claims, JSON.stringify(device.publicJwk)),
    expectCode: 'alg_not_allowed',
  },
  { name: 'RS256 signed with an RSA key', token: rs256Token(), expectCode: 'alg_not_allowed' },
  {
    name: 'ES384 header',
    token: craft({
      header: { ...ecHeader, alg: 'ES384' },
      payload: ecClaims,
      key: ecDevice.privateJwk,
    }),
    expectCode: 'alg_not_allowed',
    verify: verifyAsDevEc,
  },
  {
    name: 'ES256 header on an Ed25519 key',
    token: deviceToken({ header: { alg: 'ES256' } }),
    expectCode: 'alg_key_mismatch',
  },
  {
    name: 'EdDSA header on a P-256 key',
    token: craft({
      header: { ...ecHeader, alg: 'EdDSA' },
      payload: ecClaims,
      key: ecDevice.privateJwk,
    }),
    expectCode: 'alg_key_mismatch',
    verify: verifyAsDevEc,
  },

  // Key selection (RFC 8725 §3.10).
  {
    name: 'unknown kid (bearer lookup finds no key)',
    token: deviceToken({ header: { kid: attacker.kid } }, attacker.privateJwk),
    expectCode: 'kid_unknown',
    verify: verifyBearer,
  },
  {
    name: 'unknown device (username with no registered key)',
    token: deviceToken(
      { header: { kid: attacker.kid }, claims: { iss: 'ghost', sub: 'ghost' } },
      attacker.privateJwk,
    ),
    expectCode: 'kid_unknown',
    verify: (token) => verifyDeviceJwt(token, mqtt('ghost')),
  },
  {
    name: "kid of another device's key on our MQTT connection",
    token: deviceToken({ header: { kid: otherDevice.kid } }, otherDevice.privateJwk),
    expectCode: 'kid_mismatch',
  },
  {
    name: "another device's key signing for our sub (bearer)",
    token: deviceToken({ header: { kid: otherDevice.kid } }, otherDevice.privateJwk),
    expectCode: 'subject_mismatch',
    verify: verifyBearer,
  },
  {
    name: 'missing kid',
    token: craft({ header: without(header, 'kid'), payload: claims, key: device.privateJwk }),
    expectCode: 'kid_missing',
  },
  {
    name: 'kid carrying an injection instead of a thumbprint',
    token: deviceToken({ header: { kid: "x' OR '1'='1" } }),
    expectCode: 'kid_unknown',
  },
  {
    name: 'kid path traversal to a file key',
    token: deviceToken({ header: { kid: '../../../../dev/null' } }),
    expectCode: 'kid_unknown',
  },
  { name: 'empty kid', token: deviceToken({ header: { kid: '' } }), expectCode: 'kid_missing' },
  {
    name: 'our kid, attacker signature',
    token: deviceToken({}, attacker.privateJwk),
    expectCode: 'signature_invalid',
  },
  {
    name: 'embedded jwk with the attacker key, attacker-signed',
    token: deviceToken(
      { header: { kid: attacker.kid, jwk: attacker.publicJwk } },
      attacker.privateJwk,
    ),
    expectCode: 'key_header_refused',
  },
  {
    name: 'embedded jwk with our own key, properly signed',
    token: deviceToken({ header: { jwk: device.publicJwk } }),
    expectCode: 'key_header_refused',
  },
  {
    name: 'jku pointing elsewhere, attacker-signed',
    token: deviceToken(
      { header: { kid: attacker.kid, jku: 'https://attacker.example/jwks.json' } },
      attacker.privateJwk,
    ),
    expectCode: 'key_header_refused',
  },
  {
    name: 'x5u pointing elsewhere, attacker-signed',
    token: deviceToken(
      { header: { x5u: 'https://attacker.example/cert.pem' } },
      attacker.privateJwk,
    ),
    expectCode: 'key_header_refused',
  },
  {
    name: 'x5c with an attacker certificate chain',
    token: deviceToken({ header: { x5c: ['MIIBszCCAVmgAwIBAgIU'] } }, attacker.privateJwk),
    expectCode: 'key_header_refused',
  },

  // Time (RFC 7519 §4.1.4–4.1.6) and lifetime.
  {
    name: 'expired an hour ago',
    token: deviceToken({ claims: { iat: T - 7200, exp: T - 3600 } }),
    expectCode: 'token_expired',
  },
  {
    name: 'expired just beyond the skew (61 s ago)',
    token: deviceToken({ claims: { iat: T - 3661, exp: T - 61 } }),
    expectCode: 'token_expired',
  },
  {
    name: 'nbf beyond the skew',
    token: deviceToken({ claims: { nbf: T + 61 } }),
    expectCode: 'token_not_yet_valid',
  },
  {
    name: 'iat in the future beyond the skew',
    token: deviceToken({ claims: { iat: T + 61, exp: T + 3600 } }),
    expectCode: 'iat_in_future',
  },
  {
    name: 'lifetime one second over 24 h',
    token: deviceToken({ claims: { iat: T - 10, exp: T - 10 + 86_401 } }),
    expectCode: 'lifetime_exceeded',
  },
  {
    name: 'missing exp',
    token: craft({ header, payload: without(claims, 'exp'), key: device.privateJwk }),
    expectCode: 'exp_missing',
  },
  {
    name: 'missing iat',
    token: craft({ header, payload: without(claims, 'iat'), key: device.privateJwk }),
    expectCode: 'iat_missing',
  },
  {
    name: 'replayed jti (second use)',
    token: validA,
    expectCode: 'jti_replayed',
    verify: async (token) => {
      const replayCache = new MemoryReplayCache({ now });
      await verifyDeviceJwt(token, { ...mqtt('dev-1'), replayCache });
      return verifyDeviceJwt(token, { ...mqtt('dev-1'), replayCache });
    },
  },

  // Audience and identity binding (PROTOCOL.md §3).
  {
    name: 'wrong aud',
    token: deviceToken({ claims: { aud: 'someone-else' } }),
    expectCode: 'aud_mismatch',
  },
  {
    name: 'aud array without ours',
    token: deviceToken({ claims: { aud: ['someone-else', 'outpost-staging'] } }),
    expectCode: 'aud_mismatch',
  },
  {
    name: 'iss differs from sub',
    token: deviceToken({ claims: { iss: 'dev-2' } }),
    expectCode: 'iss_sub_mismatch',
  },
  {
    name: 'sub differs from the MQTT username',
    token: deviceToken({ claims: { iss: 'dev-9', sub: 'dev-9' } }),
    expectCode: 'subject_mismatch',
  },

  // Explicit typing (RFC 8725 §3.11).
  {
    name: 'device claims under typ outpost-enroll+jwt',
    token: deviceToken({ header: { typ: 'outpost-enroll+jwt' } }),
    expectCode: 'typ_mismatch',
  },
  {
    name: 'missing typ',
    token: craft({ header: without(header, 'typ'), payload: claims, key: device.privateJwk }),
    expectCode: 'typ_mismatch',
  },
  {
    name: 'enrollment token presented as a device JWT',
    token: enrollment.token,
    expectCode: 'typ_mismatch',
  },
  {
    name: 'API token presented as an enrollment token',
    token: apiToken.token,
    expectCode: 'typ_mismatch',
    verify: verifyAsEnrollment,
  },
  {
    name: 'device JWT presented as a telemetry batch',
    token: validA,
    expectCode: 'typ_mismatch',
    verify: (token) => verifyBatch(token, mqtt('dev-1')),
  },

  // Header extensions (RFC 7515 §4.1.11, RFC 7797).
  {
    name: 'b64:false with crit',
    token: deviceToken({ header: { b64: false, crit: ['b64'] } }),
    expectCode: 'b64_unsupported',
  },
  {
    name: 'crit naming an unknown parameter',
    token: deviceToken({ header: { crit: ['exp-ext'], 'exp-ext': 1 } }),
    expectCode: 'crit_unsupported',
  },

  // Size and compact form.
  {
    name: 'oversized token (5 kB of claims)',
    token: deviceToken({ claims: { pad: 'x'.repeat(5000) } }),
    expectCode: 'token_too_large',
  },
  {
    name: 'truncated signature (32 of 64 bytes)',
    token: withSignature(
      validA,
      b64u(Buffer.from(partsOf(validA)[2], 'base64url').subarray(0, 32)),
    ),
    expectCode: 'signature_invalid',
  },
  { name: 'empty signature', token: withSignature(validA, ''), expectCode: 'token_malformed' },
  {
    name: "token A's signature over token B's payload",
    token: `${partsOf(validB)[0]}.${partsOf(validB)[1]}.${partsOf(validA)[2]}`,
    expectCode: 'signature_invalid',
  },
  {
    name: "token B's header (rotated key's kid) over token A",
    token: `${partsOf(validRotated)[0]}.${partsOf(validA)[1]}.${partsOf(validA)[2]}`,
    expectCode: 'signature_invalid',
  },
  {
    name: 'four parts (extra dot)',
    token: `${validA}.${partsOf(validA)[2]}`,
    expectCode: 'token_malformed',
  },
  {
    name: 'five-part JWE',
    token: `${segmentOf({ alg: 'dir', enc: 'A256GCM', kid: device.kid, typ: 'JWT' })}..${b64u('iv-iv-iv-iv-')}.${b64u('ciphertext')}.${b64u('tag-tag-tag-tag-')}`,
    expectCode: 'token_malformed',
  },
  { name: 'trailing newline', token: `${validA}\n`, expectCode: 'token_malformed' },
  { name: 'leading space', token: ` ${validA}`, expectCode: 'token_malformed' },
  {
    name: 'space inside the payload segment',
    token: `${partsOf(validA)[0]}.${partsOf(validA)[1].slice(0, 10)} ${partsOf(validA)[1].slice(10)}.${partsOf(validA)[2]}`,
    expectCode: 'token_malformed',
  },
  {
    name: "padding '=' on the signature",
    token: `${validA}==`,
    expectCode: 'token_malformed',
  },
  {
    name: 'non-canonical base64url signature (same bytes)',
    token: withSignature(validA, nonCanonical(partsOf(validA)[2])),
    expectCode: 'token_malformed',
  },

  // JSON (RFC 7515 §5.2, RFC 7519 §7.2).
  {
    name: 'duplicate alg in the header (none, then EdDSA)',
    token: craft({
      header: `{"alg":"none","alg":"EdDSA","kid":"${device.kid}","typ":"JWT"}`,
      payload: claims,
      key: device.privateJwk,
    }),
    expectCode: 'token_malformed',
  },
  {
    name: 'duplicate sub in the claims',
    token: craft({
      header,
      payload: `{"iss":"dev-1","sub":"dev-2","aud":"outpost","iat":${T - 10},"exp":${T + 3600},"jti":"jti-0001-abcdef","sub":"dev-1"}`,
      key: device.privateJwk,
    }),
    expectCode: 'token_malformed',
  },
  {
    name: 'escaped duplicate name in the claims ("sub" and "\\u0073ub")',
    token: craft({
      header,
      payload: `{"iss":"dev-1","\\u0073ub":"dev-2","aud":"outpost","iat":${T - 10},"exp":${T + 3600},"jti":"jti-0001-abcdef","sub":"dev-1"}`,
      key: device.privateJwk,
    }),
    expectCode: 'token_malformed',
  },
  {
    name: 'header is a JSON array',
    token: craft({ header: '["EdDSA"]', payload: claims, key: device.privateJwk }),
    expectCode: 'token_malformed',
  },
  {
    name: 'claims are a JSON array',
    token: craft({ header, payload: JSON.stringify([claims]), key: device.privateJwk }),
    expectCode: 'token_malformed',
  },
  {
    name: 'claims are a JSON string',
    token: craft({ header, payload: '"dev-1"', key: device.privateJwk }),
    expectCode: 'token_malformed',
  },
  {
    name: 'claims are not JSON',
    token: craft({ header, payload: 'iss=dev-1&sub=dev-1', key: device.privateJwk }),
    expectCode: 'token_malformed',
  },
  {
    name: 'claims are not UTF-8',
    token: craft({
      header,
      payload: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
      key: device.privateJwk,
    }),
    expectCode: 'token_malformed',
  },

  // Claims schema.
  {
    name: 'exp as a string',
    token: deviceToken({ claims: { exp: String(T + 3600) } }),
    expectCode: 'claims_invalid',
  },
  {
    name: 'iss not a device id',
    token: deviceToken({ claims: { iss: 'Dev 1!', sub: 'Dev 1!' } }),
    expectCode: 'claims_invalid',
  },
  {
    name: 'jti too short',
    token: deviceToken({ claims: { jti: 'x' } }),
    expectCode: 'claims_invalid',
  },
  {
    name: 'exp before iat',
    token: deviceToken({ claims: { iat: T + 20, exp: T + 10 } }),
    expectCode: 'claims_invalid',
  },

  // Enrollment proof of possession (PROTOCOL.md §2).
  {
    name: 'proof signed by a key other than the submitted one',
    token: craft({
      header: { ...proofHeader, kid: ecDevice.kid },
      payload: proofClaims,
      key: ecDevice.privateJwk,
    }),
    expectCode: 'kid_mismatch',
    verify: verifyProof(),
  },
  {
    name: 'proof for another enrollment token',
    token: craft({
      header: proofHeader,
      payload: { ...proofClaims, jti: 'jti-someone-else' },
      key: newDeviceKey.privateJwk,
    }),
    expectCode: 'jti_mismatch',
    verify: verifyProof(),
  },
  {
    name: 'proof for another device',
    token: craft({
      header: proofHeader,
      payload: { ...proofClaims, sub: 'dev-4' },
      key: newDeviceKey.privateJwk,
    }),
    expectCode: 'subject_mismatch',
    verify: verifyProof(),
  },
  {
    name: 'stale proof (10 minutes old)',
    token: craft({
      header: proofHeader,
      payload: { ...proofClaims, iat: T - 600 },
      key: newDeviceKey.privateJwk,
    }),
    expectCode: 'iat_too_old',
    verify: verifyProof(),
  },
  {
    name: 'proof whose submitted public key carries the private d',
    token: craft({ header: proofHeader, payload: proofClaims, key: newDeviceKey.privateJwk }),
    expectCode: 'key_private_material',
    verify: verifyProof(newDeviceKey.privateJwk),
  },
  {
    name: 'proof whose submitted public key is RSA',
    token: craft({ header: proofHeader, payload: proofClaims, key: newDeviceKey.privateJwk }),
    expectCode: 'key_unsupported',
    verify: verifyProof({ kty: 'RSA', n: 'AQAB', e: 'AQAB' }),
  },

  // Release-signed manifests and service-signed commands (PROTOCOL.md §8).
  {
    name: 'manifest signed by an untrusted key',
    token: craft({
      header: { ...manifestHeader, kid: attacker.kid },
      payload: manifest,
      key: attacker.privateJwk,
    }),
    expectCode: 'kid_mismatch',
    verify: verifyAsManifest,
  },
  {
    name: "manifest signed by an untrusted key under a trusted key's kid",
    token: craft({ header: manifestHeader, payload: manifest, key: attacker.privateJwk }),
    expectCode: 'signature_invalid',
    verify: verifyAsManifest,
  },
  {
    name: 'manifest signed by the service key (not a release key)',
    token: craft({
      header: { ...manifestHeader, kid: service.kid },
      payload: manifest,
      key: service.privateJwk,
    }),
    expectCode: 'kid_mismatch',
    verify: verifyAsManifest,
  },
  {
    name: 'command presented as a manifest',
    token: craft({
      header: { ...commandHeader, kid: release.kid },
      payload: manifest,
      key: release.privateJwk,
    }),
    expectCode: 'typ_mismatch',
    verify: verifyAsManifest,
  },
  {
    name: 'expired command',
    token: craft({
      header: commandHeader,
      payload: { ...command, exp: T - 61 },
      key: service.privateJwk,
    }),
    expectCode: 'token_expired',
    verify: verifyAsCommand,
  },
  {
    name: 'command without exp',
    token: craft({
      header: commandHeader,
      payload: without(command, 'exp'),
      key: service.privateJwk,
    }),
    expectCode: 'exp_missing',
    verify: verifyAsCommand,
  },
  {
    name: 'command for another device',
    token: craft({
      header: commandHeader,
      payload: { ...command, device: 'dev-2' },
      key: service.privateJwk,
    }),
    expectCode: 'subject_mismatch',
    verify: verifyAsCommand,
  },
  {
    name: 'command signed by a device key',
    token: craft({
      header: { ...commandHeader, kid: device.kid },
      payload: command,
      key: device.privateJwk,
    }),
    expectCode: 'kid_mismatch',
    verify: verifyAsCommand,
  },
  {
    name: 'API token signed by a device key',
    token: craft({
      header: { alg: 'EdDSA', kid: device.kid, typ: 'outpost-api+jwt' },
      payload: apiToken.claims,
      key: device.privateJwk,
    }),
    expectCode: 'kid_mismatch',
    verify: (token) => verifyApiToken(token, { keys: serviceKeys, now, keyCache }),
  },
];

describe('attack tokens', () => {
  it('has at least 30 distinct attacks', () => {
    expect(attacks.length).toBeGreaterThanOrEqual(30);
    expect(new Set(attacks.map((attack) => attack.name)).size).toBe(attacks.length);
  });

  it.each(attacks)('$name → $expectCode', async ({ token, expectCode, verify }) => {
    await expect((verify ?? verifyAsDev1)(token)).rejects.toMatchObject({ code: expectCode });
  });
});

describe('controls: the untampered tokens verify', () => {
  it('the crafted device JWT (Ed25519)', async () => {
    await expect(verifyAsDev1(deviceToken())).resolves.toMatchObject({ claims, kid: device.kid });
  });

  it('the crafted device JWT (P-256)', async () => {
    const token = craft({ header: ecHeader, payload: ecClaims, key: ecDevice.privateJwk });
    await expect(verifyAsDevEc(token)).resolves.toMatchObject({ kid: ecDevice.kid });
  });

  it('token B and the rotated-key token', async () => {
    await expect(verifyAsDev1(validB)).resolves.toBeDefined();
    await expect(verifyAsDev1(validRotated)).resolves.toMatchObject({ kid: rotated.kid });
  });

  it('the crafted device JWT over the bearer lookup', async () => {
    await expect(verifyBearer(deviceToken())).resolves.toMatchObject({
      key: { subject: 'dev-1' },
    });
  });

  it('the service-issued tokens, each as its own kind', async () => {
    await expect(verifyAsEnrollment(enrollment.token)).resolves.toBeDefined();
    await expect(
      verifyApiToken(apiToken.token, { keys: serviceKeys, now, keyCache }),
    ).resolves.toBeDefined();
  });

  it('the crafted enrollment proof, and one signed by the library', async () => {
    const token = craft({
      header: proofHeader,
      payload: proofClaims,
      key: newDeviceKey.privateJwk,
    });
    await expect(verifyProof()(token)).resolves.toMatchObject({ kid: newDeviceKey.kid });
    const signed = await signEnrollmentProof(newDeviceKey.privateJwk, {
      jti: enrollment.claims.jti,
      deviceId: 'dev-3',
      now,
    });
    await expect(verifyProof()(signed.token)).resolves.toMatchObject({ kid: newDeviceKey.kid });
  });

  it('the crafted manifest and command', async () => {
    const manifestToken = craft({
      header: manifestHeader,
      payload: manifest,
      key: release.privateJwk,
    });
    await expect(verifyAsManifest(manifestToken)).resolves.toMatchObject({ payload: manifest });
    await expect(
      verifyAsManifest(await signManifest(release.privateJwk, manifest)),
    ).resolves.toBeDefined();
    const commandToken = craft({
      header: commandHeader,
      payload: command,
      key: service.privateJwk,
    });
    await expect(verifyAsCommand(commandToken)).resolves.toMatchObject({ payload: command });
    await expect(
      verifyAsCommand(await signCommand(service.privateJwk, command)),
    ).resolves.toBeDefined();
  });

  it('a token signed by the library verifies like the crafted one', async () => {
    const { token } = await signDeviceJwt(device.privateJwk, { deviceId: 'dev-1', now });
    await expect(verifyAsDev1(token)).resolves.toBeDefined();
  });
});

describe('boundaries that must pass', () => {
  it('expired within the skew (59 s ago)', async () => {
    const token = deviceToken({ claims: { iat: T - 3659, exp: T - 59 } });
    await expect(verifyAsDev1(token)).resolves.toBeDefined();
  });

  it('nbf and iat in the future within the skew', async () => {
    await expect(verifyAsDev1(deviceToken({ claims: { nbf: T + 60 } }))).resolves.toBeDefined();
    await expect(verifyAsDev1(deviceToken({ claims: { iat: T + 60 } }))).resolves.toBeDefined();
  });

  it('a lifetime of exactly 24 h', async () => {
    const token = deviceToken({ claims: { iat: T - 10, exp: T - 10 + 86_400 } });
    await expect(verifyAsDev1(token)).resolves.toBeDefined();
  });

  it('an aud array that includes ours', async () => {
    const token = deviceToken({ claims: { aud: ['other', 'outpost'] } });
    await expect(verifyAsDev1(token)).resolves.toBeDefined();
  });

  it('a token at exactly the size limit', async () => {
    const base = deviceToken({ claims: { pad: '' } });
    // Each 3 pad bytes add 4 base64url characters.
    const pad = 'x'.repeat(Math.floor(((4096 - base.length) * 3) / 4));
    const token = deviceToken({ claims: { pad } });
    expect(token.length).toBeLessThanOrEqual(4096);
    expect(token.length).toBeGreaterThan(4090);
    await expect(verifyAsDev1(token)).resolves.toBeDefined();
  });

  it('typ in its media-type spelling (RFC 7515 §4.1.9)', async () => {
    const token = deviceToken({ header: { typ: 'application/jwt' } });
    await expect(verifyAsDev1(token)).resolves.toBeDefined();
  });
});
