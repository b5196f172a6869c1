import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { SigningErrorCode } from './errors.js';
import {
  algorithmOf,
  generateKeyPair,
  isPublicJwk,
  type KeyType,
  parsePrivateJwk,
  parsePublicJwk,
  publicJwkOf,
  thumbprint,
} from './keys.js';

const KEY_TYPES: [KeyType, string][] = [
  ['Ed25519', 'EdDSA'],
  ['P-256', 'ES256'],
];

describe.each(KEY_TYPES)('generateKeyPair(%s)', (type, alg) => {
  it(`makes exportable JWKs with alg ${alg} and kid = RFC 7638 thumbprint`, async () => {
    const pair = await generateKeyPair(type);
    expect(pair.alg).toBe(alg);
    expect(pair.publicJwk).toMatchObject({ crv: type, kid: pair.kid, alg });
    expect(pair.privateJwk).toMatchObject({ crv: type, kid: pair.kid, alg });
    expect(pair.privateJwk.d).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect('d' in pair.publicJwk).toBe(false);
    expect(await thumbprint(pair.publicJwk)).toBe(pair.kid);
    expect(await thumbprint(pair.privateJwk)).toBe(pair.kid);
    expect(algorithmOf(pair.publicJwk)).toBe(alg);
  });

  it('derives the same public key as node:crypto', async () => {
    const pair = await generateKeyPair(type);
    const fromNode = createPublicKey({ key: { ...pair.privateJwk }, format: 'jwk' }).export({
      format: 'jwk',
    });
    const mine = publicJwkOf(pair.privateJwk);
    expect(mine.x).toBe(fromNode.x);
    if (mine.kty === 'EC') expect(mine.y).toBe(fromNode.y);
  });
});

describe('thumbprint', () => {
  it('matches the RFC 8037 §A.3 example for an Ed25519 key', async () => {
    const jwk = {
      kty: 'OKP',
      crv: 'Ed25519',
      x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
    } as const;
    expect(await thumbprint(jwk)).toBe('kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k');
  });

  it('ignores non-required members (kid, alg, use)', async () => {
    const pair = await generateKeyPair('P-256');
    const bare = parsePublicJwk({ ...pair.publicJwk, kid: undefined, alg: undefined });
    expect(await thumbprint(bare)).toBe(pair.kid);
  });
});

describe('parsePublicJwk', () => {
  it('returns a normalized copy without unknown members', async () => {
    const pair = await generateKeyPair('Ed25519');
    const parsed = parsePublicJwk({ ...pair.publicJwk, ext: true, key_ops: ['verify'] });
    expect(parsed).toEqual(pair.publicJwk);
  });

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
    format: 'jwk',
  });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({
    format: 'jwk',
  });
  const x25519 = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' });
  const ed448 = generateKeyPairSync('ed448').publicKey.export({ format: 'jwk' });
  const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({
    format: 'jwk',
  });
  const x = 'rTl5FD8DBZMxnPBGL6SQ6YltEgDFGiPfa72c9Q2Tj4c';

  const refused: [string, unknown, SigningErrorCode][] = [
    ['RSA', rsa, 'key_unsupported'],
    ['oct', { kty: 'oct', alg: 'HS256' }, 'key_unsupported'],
    ['oct secret', { kty: 'oct', k: 'c2VjcmV0' }, 'key_private_material'],
    ['EC P-384', p384, 'key_unsupported'],
    ['EC secp256k1', secp256k1, 'key_unsupported'],
    ['OKP X25519', x25519, 'key_unsupported'],
    ['OKP Ed448', ed448, 'key_unsupported'],
    ['no kty', { crv: 'Ed25519', x }, 'key_unsupported'],
    ['Ed25519 private key', { kty: 'OKP', crv: 'Ed25519', x, d: x }, 'key_private_material'],
    ['RSA private key', { ...rsa, d: 'AQAB' }, 'key_private_material'],
    ['not an object', 'Ed25519', 'key_invalid'],
    ['an array', [x], 'key_invalid'],
    ['null', null, 'key_invalid'],
    ['x missing', { kty: 'OKP', crv: 'Ed25519' }, 'key_invalid'],
    ['x too short', { kty: 'OKP', crv: 'Ed25519', x: x.slice(0, 42) }, 'key_invalid'],
    ['x with padding', { kty: 'OKP', crv: 'Ed25519', x: `${x.slice(0, 42)}=` }, 'key_invalid'],
    ['x in base64 alphabet', { kty: 'OKP', crv: 'Ed25519', x: `+${x.slice(1)}` }, 'key_invalid'],
    ['OKP with y', { kty: 'OKP', crv: 'Ed25519', x, y: x }, 'key_invalid'],
    ['EC without y', { kty: 'EC', crv: 'P-256', x }, 'key_invalid'],
    ['alg not matching the key', { kty: 'OKP', crv: 'Ed25519', x, alg: 'ES256' }, 'key_invalid'],
    ['alg HS256', { kty: 'OKP', crv: 'Ed25519', x, alg: 'HS256' }, 'key_invalid'],
    ['use enc', { kty: 'OKP', crv: 'Ed25519', x, use: 'enc' }, 'key_invalid'],
    ['kid not a string', { kty: 'OKP', crv: 'Ed25519', x, kid: 7 }, 'key_invalid'],
  ];

  it.each(refused)('refuses %s', (_name, value, code) => {
    expect(() => parsePublicJwk(value)).toThrow(expect.objectContaining({ code }));
    expect(isPublicJwk(value)).toBe(false);
  });
});

describe('parsePrivateJwk', () => {
  it('accepts both private key types', async () => {
    for (const type of ['Ed25519', 'P-256'] as const) {
      const pair = await generateKeyPair(type);
      expect(parsePrivateJwk(pair.privateJwk)).toEqual(pair.privateJwk);
    }
  });

  it('refuses a public key where a private one is needed', async () => {
    const pair = await generateKeyPair('Ed25519');
    expect(() => parsePrivateJwk(pair.publicJwk)).toThrow(
      expect.objectContaining({ code: 'key_not_private' }),
    );
  });

  it('refuses a malformed d', async () => {
    const pair = await generateKeyPair('P-256');
    expect(() => parsePrivateJwk({ ...pair.privateJwk, d: 'short' })).toThrow(
      expect.objectContaining({ code: 'key_invalid' }),
    );
  });
});
