import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { enrollmentRequestSchema } from './enrollment.js';

const token = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ0aC0wMSJ9.c2lnbmF0dXJl';
const proof = 'eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl';
const keys = generateKeyPairSync('ed25519');
const publicKey = keys.publicKey.export({ format: 'jwk' });

describe('enrollmentRequestSchema (PROTOCOL.md §2)', () => {
  it('accepts token, public key and proof', () => {
    expect(enrollmentRequestSchema.parse({ token, publicKey, proof })).toEqual({
      token,
      publicKey,
      proof,
    });
  });

  it('refuses a private key with the path of the private member', () => {
    const result = enrollmentRequestSchema.safeParse({
      token,
      publicKey: keys.privateKey.export({ format: 'jwk' }),
      proof,
    });
    expect(result.error?.issues.map((issue) => issue.path)).toEqual([['publicKey', 'd']]);
  });

  it.each([
    ['a missing proof', { token, publicKey }, ['proof']],
    ['a token that is not a compact JWS', { token: 'abc', publicKey, proof }, ['token']],
    ['an over-long token', { token: `${token}${'a'.repeat(5000)}`, publicKey, proof }, ['token']],
    ['no public key', { token, proof }, ['publicKey']],
  ])('refuses %s', (_what, body, path) => {
    expect(enrollmentRequestSchema.safeParse(body).error?.issues[0]?.path).toEqual(path);
  });
});
