import { MAX_MESSAGE_BYTES } from '@outpost/protocol/limits';
import { describe, expect, it } from 'vitest';
import { signBatch, verifyBatch } from './batch.js';
import { sampleBatch } from './fixtures/batch.js';
import { generateKeyPair } from './keys.js';

describe.each(['Ed25519', 'P-256'] as const)('batch JWS with %s', (type) => {
  it('round-trips a 100-record batch and names the publisher key', async () => {
    const pair = await generateKeyPair(type);
    const batch = sampleBatch(100);
    const jws = await signBatch(pair.privateJwk, batch);
    const verified = await verifyBatch(jws, {
      keys: () => [{ jwk: pair.publicJwk, subject: 'gw-1' }],
    });
    expect(verified).toMatchObject({ payload: batch, kid: pair.kid, key: { subject: 'gw-1' } });
  });

  it('accepts MQTT payload bytes', async () => {
    const pair = await generateKeyPair(type);
    const jws = await signBatch(pair.privateJwk, sampleBatch(3));
    const bytes = Buffer.from(jws);
    await expect(verifyBatch(bytes, { keys: [pair.publicJwk] })).resolves.toBeDefined();
  });
});

describe('verifyBatch', () => {
  it('allows batches up to MAX_MESSAGE_BYTES by default, configurable', async () => {
    const pair = await generateKeyPair();
    const jws = await signBatch(pair.privateJwk, sampleBatch(2000));
    expect(jws.length).toBeGreaterThan(4096);
    expect(jws.length).toBeLessThan(MAX_MESSAGE_BYTES);
    await expect(verifyBatch(jws, { keys: [pair.publicJwk] })).resolves.toBeDefined();
    await expect(
      verifyBatch(jws, { keys: [pair.publicJwk], maxBytes: 4096 }),
    ).rejects.toMatchObject({ code: 'token_too_large' });
  });

  it('returns any JSON payload unvalidated, but refuses duplicate names', async () => {
    const pair = await generateKeyPair();
    const bare = await signBatch(pair.privateJwk, [{ n: 'temperature', v: 21 }]);
    await expect(verifyBatch(bare, { keys: [pair.publicJwk] })).resolves.toMatchObject({
      payload: [{ n: 'temperature', v: 21 }],
    });
    const { craft } = await import('./fixtures/craft.js');
    const duplicated = craft({
      header: { alg: 'EdDSA', kid: pair.kid, typ: 'outpost-batch+jws' },
      payload: '{"v":1,"records":[],"records":[{"n":"x","v":1}]}',
      key: pair.privateJwk,
    });
    await expect(verifyBatch(duplicated, { keys: [pair.publicJwk] })).rejects.toMatchObject({
      code: 'token_malformed',
    });
  });
});
