import { describe, expect, it } from 'vitest';
import { KeyCache } from './key-cache.js';
import { generateKeyPair, type PublicJwk } from './keys.js';

const ed = await generateKeyPair('Ed25519');
const ec = await generateKeyPair('P-256');

describe('KeyCache', () => {
  it('imports a key once and serves the same CryptoKey after', async () => {
    const cache = new KeyCache();
    const first = await cache.get(ed.publicJwk);
    const second = await cache.get({ ...ed.publicJwk });
    expect(second.key).toBe(first.key);
    expect(first).toMatchObject({ kid: ed.kid, alg: 'EdDSA' });
    expect(first.key.type).toBe('public');
    expect(cache.size).toBe(1);
  });

  it('shares one import between concurrent callers', async () => {
    const cache = new KeyCache();
    const [a, b] = await Promise.all([cache.get(ec.publicJwk), cache.get(ec.publicJwk)]);
    expect(a.key).toBe(b.key);
    expect(a.alg).toBe('ES256');
  });

  it('computes the kid from the material, never from the kid member', async () => {
    const cache = new KeyCache();
    const lying: PublicJwk = { ...ed.publicJwk, kid: ec.kid };
    expect((await cache.get(lying)).kid).toBe(ed.kid);
  });

  it('keys entries by material: a changed JWK under an old kid is a miss', async () => {
    const cache = new KeyCache();
    await cache.get(ed.publicJwk);
    const other = await generateKeyPair('Ed25519');
    const swapped = await cache.get({ ...other.publicJwk, kid: ed.kid });
    expect(swapped.kid).toBe(other.kid);
    expect(cache.size).toBe(2);
  });

  it('drops the least recently used key when full', async () => {
    const cache = new KeyCache({ maxEntries: 2 });
    const third = await generateKeyPair('Ed25519');
    const firstEd = await cache.get(ed.publicJwk);
    await cache.get(ec.publicJwk);
    await cache.get(ed.publicJwk); // ed is now the most recently used
    await cache.get(third.publicJwk); // evicts ec
    expect(cache.size).toBe(2);
    expect((await cache.get(ed.publicJwk)).key).toBe(firstEd.key);
    expect(cache.size).toBe(2);
  });

  it('imports every time with maxEntries 0', async () => {
    const cache = new KeyCache({ maxEntries: 0 });
    const a = await cache.get(ed.publicJwk);
    const b = await cache.get(ed.publicJwk);
    expect(a.key).not.toBe(b.key);
    expect(cache.size).toBe(0);
  });

  it('invalidates by kid', async () => {
    const cache = new KeyCache();
    const before = await cache.get(ed.publicJwk);
    await cache.get(ec.publicJwk);
    expect(cache.invalidate(ed.kid)).toBe(1);
    expect(cache.size).toBe(1);
    expect((await cache.get(ed.publicJwk)).key).not.toBe(before.key);
    expect(cache.invalidate('no-such-kid')).toBe(0);
    cache.clear();
    expect(cache.size).toBe(0);
  });

  it('refuses private keys and unsupported keys before importing', async () => {
    const cache = new KeyCache();
    expect(() => cache.get(ed.privateJwk as PublicJwk)).toThrow(
      expect.objectContaining({ code: 'key_private_material' }),
    );
    expect(() => cache.get({ kty: 'RSA' } as unknown as PublicJwk)).toThrow(
      expect.objectContaining({ code: 'key_unsupported' }),
    );
  });

  it('refuses a P-256 point that is not on the curve, and does not cache it', async () => {
    const cache = new KeyCache();
    if (ec.publicJwk.kty !== 'EC') throw new Error('expected an EC key');
    const offCurve: PublicJwk = { ...ec.publicJwk, y: ec.publicJwk.x };
    await expect(cache.get(offCurve)).rejects.toMatchObject({ code: 'key_invalid' });
    await Promise.resolve();
    expect(cache.size).toBe(0);
  });
});
