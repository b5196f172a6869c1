import { enrollmentProofClaimsSchema } from '@outpost/protocol/claims';
import { AppError } from '@outpost/protocol/errors';
import { describe, expect, it, vi } from 'vitest';
import { SigningError } from './errors.js';
import { craft } from './fixtures/craft.js';
import { KeyCache } from './key-cache.js';
import { generateKeyPair } from './keys.js';
import { signJson, signJws } from './sign.js';
import { type JwsHeader, verifyJws, verifyJwt } from './verify.js';

const T = 1_700_000_000;
const now = () => T;
const ed = await generateKeyPair('Ed25519');
const ec = await generateKeyPair('P-256');
const utf8 = new TextEncoder();

describe('verifyJws', () => {
  it('asks the resolver with the kid and the header, and returns the matching key', async () => {
    const token = await signJws('batch', utf8.encode('{"v":1}'), ec.privateJwk);
    const resolver = vi.fn((_kid: string, _header: JwsHeader) => [
      { jwk: ed.publicJwk, subject: 'dev-1' },
      { jwk: ec.publicJwk, subject: 'dev-1' },
    ]);
    const verified = await verifyJws('batch', token, { keys: resolver });
    expect(resolver).toHaveBeenCalledOnce();
    expect(resolver).toHaveBeenCalledWith(ec.kid, {
      alg: 'ES256',
      kid: ec.kid,
      typ: 'outpost-batch+jws',
    });
    expect(verified).toMatchObject({ kid: ec.kid, alg: 'ES256', key: { subject: 'dev-1' } });
    expect(new TextDecoder().decode(verified.payload)).toBe('{"v":1}');
  });

  it('accepts a key list and a JWKS as key sources', async () => {
    const token = await signJws('batch', utf8.encode('[]'), ed.privateJwk);
    await expect(verifyJws('batch', token, { keys: [ed.publicJwk] })).resolves.toBeDefined();
    await expect(
      verifyJws('batch', token, { keys: { keys: [ec.publicJwk, ed.publicJwk] } }),
    ).resolves.toMatchObject({ kid: ed.kid });
  });

  it('accepts the token as bytes', async () => {
    const token = await signJws('batch', utf8.encode('{}'), ed.privateJwk);
    await expect(
      verifyJws('batch', utf8.encode(token), { keys: [ed.publicJwk] }),
    ).resolves.toBeDefined();
  });

  it('verifies both key types as text and as bytes, and refuses any changed bit', async () => {
    for (const pair of [ed, ec]) {
      const token = await signJws('batch', utf8.encode('{"v":1,"x":"\u00e9"}'), pair.privateJwk);
      // The signing input is read from the bytes it arrived in, even as a view into a larger
      // buffer (an MQTT packet).
      const framed = utf8.encode(`xx${token}yy`).subarray(2, 2 + token.length);
      for (const form of [token, utf8.encode(token), framed]) {
        const verified = await verifyJws('batch', form, { keys: [pair.publicJwk] });
        expect(new TextDecoder().decode(verified.payload)).toBe('{"v":1,"x":"é"}');
        expect(verified.payload).toBeInstanceOf(Uint8Array);
      }
      const [h, p, sig] = token.split('.') as [string, string, string];
      const flipped = Buffer.from(sig, 'base64url');
      flipped[5]! ^= 1;
      const short = Buffer.from(sig, 'base64url').subarray(0, 48);
      for (const bad of [
        `${h}.${p}.${flipped.toString('base64url')}`,
        `${h}.${p}.${short.toString('base64url')}`,
        `${h}.${p.slice(0, -2)}AA.${sig}`,
      ]) {
        await expect(verifyJws('batch', bad, { keys: [pair.publicJwk] })).rejects.toMatchObject({
          code: 'signature_invalid',
          details: { kid: pair.kid },
        });
      }
    }
  });

  it('checks the size before parsing, with a configurable limit', async () => {
    const token = await signJws('batch', utf8.encode('{}'), ed.privateJwk);
    const resolver = vi.fn(() => [ed.publicJwk]);
    await expect(
      verifyJws('batch', token, { keys: resolver, maxBytes: token.length - 1 }),
    ).rejects.toMatchObject({ code: 'token_too_large', kind: 'invalid' });
    await expect(
      verifyJws('batch', utf8.encode(token), { keys: resolver, maxBytes: token.length - 1 }),
    ).rejects.toMatchObject({ code: 'token_too_large' });
    expect(resolver).not.toHaveBeenCalled();
    await expect(
      verifyJws('batch', token, { keys: resolver, maxBytes: token.length }),
    ).resolves.toBeDefined();
  });

  it('refuses bytes that are not text', async () => {
    await expect(
      verifyJws('batch', new Uint8Array([0xff, 0x2e, 0x2e]), { keys: [ed.publicJwk] }),
    ).rejects.toMatchObject({ code: 'token_malformed' });
  });

  it('propagates the resolver’s own refusal', async () => {
    const token = await signJws('batch', utf8.encode('{}'), ed.privateJwk);
    const revoked = new AppError('unauthenticated', 'device_revoked', 'revoked');
    await expect(
      verifyJws('batch', token, {
        keys: () => {
          throw revoked;
        },
      }),
    ).rejects.toBe(revoked);
  });

  it('uses the given key cache', async () => {
    const keyCache = new KeyCache();
    const token = await signJws('batch', utf8.encode('{}'), ed.privateJwk);
    await verifyJws('batch', token, { keys: [ed.publicJwk], keyCache });
    expect(keyCache.size).toBe(1);
  });

  it('throws SigningError, an AppError with a stable code and kind', async () => {
    const error = await verifyJws('batch', 'x.y', { keys: [] }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(SigningError);
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({
      name: 'SigningError',
      code: 'token_malformed',
      kind: 'invalid',
      details: { tokenKind: 'batch', parts: 2 },
    });
  });

  it('names the algorithm it refused without echoing long input', async () => {
    const token = craft({
      header: { alg: 'x'.repeat(100), kid: ed.kid, typ: 'outpost-batch+jws' },
      payload: {},
      key: ed.privateJwk,
    });
    await expect(verifyJws('batch', token, { keys: [ed.publicJwk] })).rejects.toMatchObject({
      code: 'alg_not_allowed',
      kind: 'unauthenticated',
      details: { alg: 'x'.repeat(32) },
    });
  });

  it('ignores unknown, non-critical header parameters', async () => {
    const token = craft({
      header: { alg: 'EdDSA', kid: ed.kid, typ: 'outpost-batch+jws', cty: 'json', x: 1 },
      payload: {},
      key: ed.privateJwk,
    });
    await expect(verifyJws('batch', token, { keys: [ed.publicJwk] })).resolves.toBeDefined();
  });
});

describe('verifyJwt', () => {
  const proof = { jti: 'jti-0001-abcdef', sub: 'dev-1', iat: T };
  const options = { keys: [ed.publicJwk], schema: enrollmentProofClaimsSchema, now };

  it('honours a configurable clock skew', async () => {
    const token = await signJson('enrollmentProof', { ...proof, iat: T + 100 }, ed.privateJwk);
    const opts = { ...options, requireExp: false };
    await expect(verifyJwt('enrollmentProof', token, opts)).rejects.toMatchObject({
      code: 'iat_in_future',
    });
    await expect(
      verifyJwt('enrollmentProof', token, { ...opts, clockSkewS: 120 }),
    ).resolves.toBeDefined();
  });

  it('requires exp by default, and can be told not to', async () => {
    const token = await signJson('enrollmentProof', proof, ed.privateJwk);
    await expect(verifyJwt('enrollmentProof', token, options)).rejects.toMatchObject({
      code: 'exp_missing',
    });
    await expect(
      verifyJwt('enrollmentProof', token, { ...options, requireExp: false }),
    ).resolves.toMatchObject({ claims: proof });
  });

  it('treats a missing exp as an unbounded lifetime when a maximum is set', async () => {
    const token = await signJson('enrollmentProof', proof, ed.privateJwk);
    await expect(
      verifyJwt('enrollmentProof', token, { ...options, requireExp: false, maxLifetimeS: 60 }),
    ).rejects.toMatchObject({ code: 'lifetime_exceeded' });
  });

  it('checks the issuer when asked', async () => {
    const token = await signJson(
      'enrollmentProof',
      { ...proof, iss: 'someone', exp: T + 60 },
      ed.privateJwk,
    );
    await expect(
      verifyJwt('enrollmentProof', token, { ...options, issuer: 'outpost' }),
    ).rejects.toMatchObject({ code: 'iss_mismatch' });
  });

  it('reports schema issues without values', async () => {
    const token = await signJson(
      'enrollmentProof',
      { ...proof, sub: 'NOT A DEVICE', exp: T + 60 },
      ed.privateJwk,
    );
    const error = await verifyJwt('enrollmentProof', token, options).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'claims_invalid', details: { issues: [{ path: 'sub' }] } });
  });

  it('remembers a jti only when every other check passed', async () => {
    const seen: string[] = [];
    const replayCache = {
      checkAndRemember: async (jti: string) => {
        seen.push(jti);
        return true;
      },
    };
    const expired = await signJson(
      'enrollmentProof',
      { ...proof, iat: T - 100, exp: T - 70 },
      ed.privateJwk,
    );
    await expect(
      verifyJwt('enrollmentProof', expired, { ...options, replayCache }),
    ).rejects.toMatchObject({ code: 'token_expired' });
    expect(seen).toEqual([]);
    const fresh = await signJson('enrollmentProof', { ...proof, exp: T + 60 }, ed.privateJwk);
    await verifyJwt('enrollmentProof', fresh, { ...options, replayCache });
    expect(seen).toEqual([proof.jti]);
  });
});
