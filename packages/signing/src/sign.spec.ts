import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from './keys.js';
import { importSigningKey, signJson, signJws } from './sign.js';
import { verifyJws } from './verify.js';

describe.each(['Ed25519', 'P-256'] as const)('signing with %s', (type) => {
  it('imports a non-extractable key with the thumbprint kid', async () => {
    const pair = await generateKeyPair(type);
    const key = await importSigningKey(pair.privateJwk);
    expect(key).toMatchObject({ kid: pair.kid, alg: pair.alg, publicJwk: pair.publicJwk });
    expect(key.key.extractable).toBe(false);
    expect(key.key.type).toBe('private');
  });

  it('writes exactly {alg, kid, typ} and nothing else into the header', async () => {
    const pair = await generateKeyPair(type);
    const token = await signJws('manifest', new TextEncoder().encode('{}'), pair.privateJwk);
    expect(decodeProtectedHeader(token)).toEqual({
      alg: pair.alg,
      kid: pair.kid,
      typ: 'outpost-manifest+jws',
    });
    await expect(verifyJws('manifest', token, { keys: [pair.publicJwk] })).resolves.toBeDefined();
  });

  it('refuses a private JWK whose public half belongs to another key', async () => {
    const a = await generateKeyPair(type);
    const b = await generateKeyPair(type);
    const mixed = { ...a.privateJwk, ...b.publicJwk, d: a.privateJwk.d };
    await expect(importSigningKey(mixed)).rejects.toMatchObject({ code: 'key_invalid' });
  });
});

describe('signJson', () => {
  it('refuses payloads JSON cannot carry', async () => {
    const pair = await generateKeyPair();
    await expect(signJson('batch', { n: 1n }, pair.privateJwk)).rejects.toMatchObject({
      code: 'payload_invalid',
    });
    await expect(signJson('batch', undefined, pair.privateJwk)).rejects.toMatchObject({
      code: 'payload_invalid',
    });
  });
});
