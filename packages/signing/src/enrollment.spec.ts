import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  signEnrollmentProof,
  signEnrollmentToken,
  verifyEnrollmentProof,
  verifyEnrollmentToken,
} from './enrollment.js';
import { generateKeyPair } from './keys.js';

const T = 1_700_000_000;
const now = () => T;

describe.each(['Ed25519', 'P-256'] as const)('enrollment with %s keys', (type) => {
  it('issues a token and accepts a proof by the new device key (PROTOCOL.md §2)', async () => {
    const service = await generateKeyPair(type);
    const { token, claims } = await signEnrollmentToken(service.privateJwk, {
      issuer: 'outpost',
      deviceId: 'sensor-12',
      kind: 'device',
      gateway: 'gw-1',
      now,
    });
    expect(decodeProtectedHeader(token)).toMatchObject({ typ: 'outpost-enroll+jwt' });
    expect(claims).toMatchObject({ sub: 'sensor-12', kind: 'device', gw: 'gw-1', exp: T + 86_400 });
    const verified = await verifyEnrollmentToken(token, {
      keys: [service.publicJwk],
      issuer: 'outpost',
      now,
    });
    expect(verified.claims).toEqual(claims);

    // The device makes its key pair and proves possession.
    const device = await generateKeyPair(type);
    const proof = await signEnrollmentProof(device.privateJwk, {
      jti: verified.claims.jti,
      deviceId: verified.claims.sub,
      now: () => T + 30,
    });
    expect(decodeProtectedHeader(proof.token)).toEqual({
      alg: device.alg,
      kid: device.kid,
      typ: 'outpost-proof+jwt',
    });
    const accepted = await verifyEnrollmentProof(proof.token, {
      publicJwk: JSON.parse(JSON.stringify(device.publicJwk)),
      token: verified.claims,
      now: () => T + 31,
    });
    expect(accepted).toMatchObject({ kid: device.kid, claims: { sub: 'sensor-12' } });
  });
});

describe('verifyEnrollmentToken', () => {
  it('checks the issuer and refuses an expired token', async () => {
    const service = await generateKeyPair();
    const { token } = await signEnrollmentToken(service.privateJwk, {
      issuer: 'outpost',
      deviceId: 'gw-2',
      kind: 'gateway',
      ttlS: 60,
      now,
    });
    const keys = [service.publicJwk];
    await expect(
      verifyEnrollmentToken(token, { keys, issuer: 'other', now }),
    ).rejects.toMatchObject({
      code: 'iss_mismatch',
    });
    await expect(verifyEnrollmentToken(token, { keys, now: () => T + 121 })).rejects.toMatchObject({
      code: 'token_expired',
    });
    await expect(
      verifyEnrollmentToken(token, { keys, now, maxLifetimeS: 30 }),
    ).rejects.toMatchObject({ code: 'lifetime_exceeded' });
  });
});

describe('verifyEnrollmentProof', () => {
  it('accepts a proof up to the maximum age plus skew, and not beyond', async () => {
    const device = await generateKeyPair();
    const { token } = await signEnrollmentProof(device.privateJwk, {
      jti: 'jti-0001-abcdef',
      deviceId: 'dev-1',
      now,
    });
    const options = {
      publicJwk: device.publicJwk,
      token: { jti: 'jti-0001-abcdef', sub: 'dev-1' },
      maxAgeS: 120,
    };
    await expect(
      verifyEnrollmentProof(token, { ...options, now: () => T + 180 }),
    ).resolves.toBeDefined();
    await expect(
      verifyEnrollmentProof(token, { ...options, now: () => T + 181 }),
    ).rejects.toMatchObject({ code: 'iat_too_old' });
  });

  it('refuses a proof carrying an exp already past', async () => {
    const device = await generateKeyPair();
    const { craft } = await import('./fixtures/craft.js');
    const token = craft({
      header: { alg: 'EdDSA', kid: device.kid, typ: 'outpost-proof+jwt' },
      payload: { jti: 'jti-0001-abcdef', sub: 'dev-1', iat: T - 100, exp: T - 90 },
      key: device.privateJwk,
    });
    await expect(
      verifyEnrollmentProof(token, {
        publicJwk: device.publicJwk,
        token: { jti: 'jti-0001-abcdef', sub: 'dev-1' },
        now,
      }),
    ).rejects.toMatchObject({ code: 'token_expired' });
  });
});
