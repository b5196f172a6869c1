import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KID_PATTERN, publicJwkSchema } from './keys.js';

function thumbprint(members: Record<string, string>): string {
  // RFC 7638 §3: required members in lexicographic order, no whitespace.
  const canonical = JSON.stringify(Object.fromEntries(Object.entries(members).sort()));
  return createHash('sha256').update(canonical).digest('base64url');
}

const ed = generateKeyPairSync('ed25519');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const edPublic = ed.publicKey.export({ format: 'jwk' }) as Record<string, string>;
const ecPublic = ec.publicKey.export({ format: 'jwk' }) as Record<string, string>;

describe('publicJwkSchema (PROTOCOL.md §1)', () => {
  it('accepts real Ed25519 and P-256 public keys, with kid, alg and use', () => {
    expect(publicJwkSchema.parse(edPublic)).toEqual(edPublic);
    expect(publicJwkSchema.parse(ecPublic)).toEqual(ecPublic);
    const kid = thumbprint({ crv: 'Ed25519', kty: 'OKP', x: edPublic.x! });
    expect(kid).toMatch(KID_PATTERN);
    const full = { ...edPublic, kid, alg: 'EdDSA', use: 'sig', key_ops: ['verify'] };
    expect(publicJwkSchema.parse(full)).toEqual(full);
    expect(publicJwkSchema.parse({ ...ecPublic, alg: 'ES256' })).toMatchObject({ alg: 'ES256' });
  });

  it('refuses a private JWK, naming the private member', () => {
    const privateJwk = ed.privateKey.export({ format: 'jwk' });
    const result = publicJwkSchema.safeParse(privateJwk);
    expect(result.success).toBe(false);
    expect(result.error?.issues).toEqual([
      expect.objectContaining({ path: ['d'], message: expect.stringMatching(/private/) }),
    ]);
    const ecPrivate = ec.privateKey.export({ format: 'jwk' });
    expect(publicJwkSchema.safeParse(ecPrivate).error?.issues[0]?.path).toEqual(['d']);
  });

  it.each([
    ['RSA', { kty: 'RSA', n: 'AQAB', e: 'AQAB' }],
    ['a symmetric key', { kty: 'oct', k: 'AAAA' }],
    ['Ed448', { ...edPublic, crv: 'Ed448' }],
    ['P-384', { ...ecPublic, crv: 'P-384' }],
    ['X25519', { ...edPublic, crv: 'X25519' }],
    ['an EC key without y', { kty: 'EC', crv: 'P-256', x: ecPublic.x }],
    ['alg ES256 on an OKP key', { ...edPublic, alg: 'ES256' }],
    ['alg none', { ...edPublic, alg: 'none' }],
    ['use enc', { ...edPublic, use: 'enc' }],
    ['key_ops sign', { ...edPublic, key_ops: ['sign'] }],
    ['a short x', { ...edPublic, x: edPublic.x!.slice(1) }],
    ['a non-canonical x (last character has extra bits)', { ...edPublic, x: `${'A'.repeat(42)}B` }],
    ['padding', { ...edPublic, x: `${edPublic.x}=` }],
    ['an unknown member', { ...edPublic, extra: 1 }],
    ['a kid that is not a thumbprint', { ...edPublic, kid: 'key-1' }],
    ['a string', 'x'],
    ['null', null],
  ])('refuses %s', (_what, jwk) => {
    expect(publicJwkSchema.safeParse(jwk).success).toBe(false);
  });
});
