import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { signApiToken, verifyApiToken } from './api-token.js';
import { generateKeyPair } from './keys.js';

const T = 1_700_000_000;
const now = () => T;

describe.each(['Ed25519', 'P-256'] as const)('API token with %s', (type) => {
  it('signs and verifies roles (SURFACES.md)', async () => {
    const service = await generateKeyPair(type);
    const { token, claims } = await signApiToken(service.privateJwk, {
      issuer: 'outpost',
      subject: 'alice',
      roles: ['operator', 'technician'],
      ttlS: 3600,
      now,
    });
    expect(decodeProtectedHeader(token)).toMatchObject({
      typ: 'outpost-api+jwt',
      alg: service.alg,
    });
    const verified = await verifyApiToken(token, {
      keys: { keys: [service.publicJwk] },
      issuer: 'outpost',
      now,
    });
    expect(verified.claims).toEqual(claims);
    expect(verified.claims.roles).toEqual(['operator', 'technician']);
  });
});

describe('API tokens without expiry', () => {
  it('are refused by default and accepted when the caller opts in', async () => {
    const service = await generateKeyPair();
    const { token, claims } = await signApiToken(service.privateJwk, {
      issuer: 'outpost',
      subject: 'bootstrap-admin',
      roles: ['admin'],
      now,
    });
    expect(claims.exp).toBeUndefined();
    const keys = [service.publicJwk];
    await expect(verifyApiToken(token, { keys, now })).rejects.toMatchObject({
      code: 'exp_missing',
    });
    await expect(verifyApiToken(token, { keys, now, requireExp: false })).resolves.toMatchObject({
      claims: { sub: 'bootstrap-admin' },
    });
  });

  it('refuses unknown roles at signing', async () => {
    const service = await generateKeyPair();
    await expect(
      signApiToken(service.privateJwk, {
        issuer: 'outpost',
        subject: 'mallory',
        roles: ['root' as never],
        now,
      }),
    ).rejects.toMatchObject({ code: 'claims_invalid' });
  });
});
