import { describe, expect, it } from 'vitest';
import { signCommand, verifyCommand } from './command.js';
import { findJwk, loadServiceKeySet, parseJwks, toJwks } from './jwks.js';
import { generateKeyPair } from './keys.js';

const T = 1_700_000_000;
const now = () => T;

describe('toJwks', () => {
  it('publishes each key once with kid, alg and use', async () => {
    const ed = await generateKeyPair('Ed25519');
    const ec = await generateKeyPair('P-256');
    const { kid: _kid, alg: _alg, ...bare } = ed.publicJwk;
    const jwks = await toJwks([bare, ec.publicJwk, ed.publicJwk]);
    expect(jwks.keys).toEqual([
      { ...ed.publicJwk, use: 'sig' },
      { ...ec.publicJwk, use: 'sig' },
    ]);
    expect(findJwk(jwks, ec.kid)).toEqual({ ...ec.publicJwk, use: 'sig' });
    expect(findJwk(jwks, 'missing')).toBeUndefined();
  });

  it('refuses a kid that is not the thumbprint, and private keys', async () => {
    const ed = await generateKeyPair('Ed25519');
    await expect(toJwks([{ ...ed.publicJwk, kid: 'service-2024' }])).rejects.toMatchObject({
      code: 'key_invalid',
    });
    await expect(toJwks([ed.privateJwk])).rejects.toMatchObject({ code: 'key_private_material' });
  });
});

describe('parseJwks', () => {
  it('round-trips JSON and refuses what is not a JWKS', async () => {
    const ec = await generateKeyPair('P-256');
    const jwks = await toJwks([ec.publicJwk]);
    await expect(parseJwks(JSON.parse(JSON.stringify(jwks)))).resolves.toEqual(jwks);
    await expect(parseJwks({ key: [] })).rejects.toMatchObject({ code: 'key_invalid' });
    await expect(parseJwks({ keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB' }] })).rejects.toMatchObject(
      {
        code: 'key_unsupported',
      },
    );
  });
});

describe('loadServiceKeySet', () => {
  it('signs with the active key and keeps the retired key verifiable', async () => {
    const retired = await generateKeyPair('Ed25519');
    const current = await generateKeyPair('P-256');
    const set = await loadServiceKeySet([retired.privateJwk, current.privateJwk], current.kid);
    expect(set.active.kid).toBe(current.kid);
    expect(set.jwks.keys.map((key) => key.kid)).toEqual([retired.kid, current.kid]);
    expect(set.signingKey(retired.kid)?.alg).toBe('EdDSA');

    const before = await signCommand(set.signingKey(retired.kid)!, { exp: T + 60 });
    const after = await signCommand(set.active, { exp: T + 60 });
    await expect(verifyCommand(before, { keys: set.jwks, now })).resolves.toMatchObject({
      kid: retired.kid,
    });
    await expect(verifyCommand(after, { keys: set.jwks, now })).resolves.toMatchObject({
      kid: current.kid,
    });
  });

  it('refuses an empty set and an unknown active kid', async () => {
    const only = await generateKeyPair();
    await expect(loadServiceKeySet([])).rejects.toMatchObject({ code: 'key_invalid' });
    await expect(loadServiceKeySet([only.privateJwk], 'other')).rejects.toMatchObject({
      code: 'key_invalid',
    });
    await expect(loadServiceKeySet([only.publicJwk])).rejects.toMatchObject({
      code: 'key_not_private',
    });
  });
});
