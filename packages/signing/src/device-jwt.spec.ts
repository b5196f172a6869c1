import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { signDeviceJwt, verifyDeviceJwt } from './device-jwt.js';
import { generateKeyPair } from './keys.js';
import { MemoryReplayCache } from './replay-cache.js';
import { importSigningKey } from './sign.js';

const T = 1_700_000_000;
const now = () => T;

describe.each(['Ed25519', 'P-256'] as const)('device JWT with %s', (type) => {
  it('signs PROTOCOL.md §3 header and claims, and verifies them', async () => {
    const pair = await generateKeyPair(type);
    const { token, claims } = await signDeviceJwt(pair.privateJwk, {
      deviceId: 'dev-1',
      now,
      lifetimeS: 600,
      jti: 'jti-0001-abcdef',
    });
    expect(decodeProtectedHeader(token)).toEqual({ alg: pair.alg, kid: pair.kid, typ: 'JWT' });
    expect(claims).toEqual({
      iss: 'dev-1',
      sub: 'dev-1',
      aud: 'outpost',
      iat: T,
      exp: T + 600,
      jti: 'jti-0001-abcdef',
    });
    const verified = await verifyDeviceJwt(token, {
      keys: () => [pair.publicJwk],
      deviceId: 'dev-1',
      now,
    });
    expect(verified).toMatchObject({ claims, kid: pair.kid, alg: pair.alg });
  });

  it('uses a custom audience and a pre-imported key, with a random jti by default', async () => {
    const pair = await generateKeyPair(type);
    const key = await importSigningKey(pair.privateJwk);
    const a = await signDeviceJwt(key, { deviceId: 'gw-7', audience: 'plant-3', now });
    const b = await signDeviceJwt(key, { deviceId: 'gw-7', audience: 'plant-3', now });
    expect(a.claims.jti).not.toBe(b.claims.jti);
    expect(a.claims.exp - a.claims.iat).toBe(3600);
    const options = { keys: [pair.publicJwk], audience: 'plant-3', now };
    await expect(verifyDeviceJwt(a.token, options)).resolves.toBeDefined();
    await expect(
      verifyDeviceJwt(a.token, { ...options, audience: 'outpost' }),
    ).rejects.toMatchObject({
      code: 'aud_mismatch',
    });
  });

  it('refuses a second use when given a replay cache', async () => {
    const pair = await generateKeyPair(type);
    const { token } = await signDeviceJwt(pair.privateJwk, { deviceId: 'dev-1', now });
    const replayCache = new MemoryReplayCache({ now });
    const options = { keys: [pair.publicJwk], now, replayCache };
    await verifyDeviceJwt(token, options);
    await expect(verifyDeviceJwt(token, options)).rejects.toMatchObject({ code: 'jti_replayed' });
  });

  it('honours a configured maximum lifetime', async () => {
    const pair = await generateKeyPair(type);
    const { token } = await signDeviceJwt(pair.privateJwk, {
      deviceId: 'dev-1',
      now,
      lifetimeS: 7200,
    });
    await expect(
      verifyDeviceJwt(token, { keys: [pair.publicJwk], now, maxLifetimeS: 3600 }),
    ).rejects.toMatchObject({ code: 'lifetime_exceeded' });
  });
});

describe('signDeviceJwt', () => {
  it('refuses an invalid device id before signing', async () => {
    const pair = await generateKeyPair();
    await expect(
      signDeviceJwt(pair.privateJwk, { deviceId: 'Not Valid', now }),
    ).rejects.toMatchObject({ code: 'claims_invalid' });
  });

  it('refuses to sign with a public key', async () => {
    const pair = await generateKeyPair();
    await expect(
      signDeviceJwt(pair.publicJwk as never, { deviceId: 'dev-1', now }),
    ).rejects.toMatchObject({ code: 'key_not_private' });
  });
});
