import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { compactVerify } from 'jose';
import { bench, describe } from 'vitest';
import { signBatch, verifyBatch } from '../src/batch.js';
import { signDeviceJwt, verifyDeviceJwt } from '../src/device-jwt.js';
import { sampleBatch } from '../src/fixtures/batch.js';
import { KeyCache } from '../src/key-cache.js';
import { generateKeyPair, type KeyType } from '../src/keys.js';
import { importSigningKey } from '../src/sign.js';

/**
 * Cost of signing and verifying per algorithm, each group against one node:crypto floor
 * (the bare signature operation over the same signing input, no parsing, no policy).
 * "key cache" is the verifier as deployed; "import each time" re-imports the JWK per token.
 */

const T = 1_700_000_000;
const now = () => T;

interface Fixture {
  deviceJwt: string;
  batchJws: string;
  sign: (input: Buffer) => Buffer;
  verifyRaw: (input: Buffer, signature: Buffer) => boolean;
  signDeviceJwt: () => Promise<unknown>;
  verifyCached: () => Promise<unknown>;
  verifyImportEach: () => Promise<unknown>;
  verifyBatchCached: () => Promise<unknown>;
  verifyBatchImportEach: () => Promise<unknown>;
  joseCompactVerify: () => Promise<unknown>;
}

function splitForFloor(token: string): { input: Buffer; signature: Buffer } {
  const dot = token.lastIndexOf('.');
  return {
    input: Buffer.from(token.slice(0, dot)),
    signature: Buffer.from(token.slice(dot + 1), 'base64url'),
  };
}

async function fixture(type: KeyType): Promise<Fixture> {
  const pair = await generateKeyPair(type);
  const signingKey = await importSigningKey(pair.privateJwk);
  const privateKey: KeyObject = createPrivateKey({ key: { ...pair.privateJwk }, format: 'jwk' });
  const publicKey: KeyObject = createPublicKey({ key: { ...pair.publicJwk }, format: 'jwk' });
  const digest = type === 'Ed25519' ? null : 'sha256';
  const { token: deviceJwt } = await signDeviceJwt(signingKey, { deviceId: 'dev-1', now });
  const batchJws = await signBatch(signingKey, sampleBatch(100));

  const cache = new KeyCache();
  const noCache = new KeyCache({ maxEntries: 0 });
  const keys = () => [pair.publicJwk];
  const options = { keys, deviceId: 'dev-1', now };
  // Warm the cache so the "key cache" benches measure the steady state.
  await verifyDeviceJwt(deviceJwt, { ...options, keyCache: cache });
  const { key: importedPublicKey } = await cache.get(pair.publicJwk);

  return {
    deviceJwt,
    batchJws,
    sign: (input) => sign(digest, input, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    verifyRaw: (input, signature) =>
      verify(digest, input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature),
    signDeviceJwt: () => signDeviceJwt(signingKey, { deviceId: 'dev-1', now }),
    verifyCached: () => verifyDeviceJwt(deviceJwt, { ...options, keyCache: cache }),
    verifyImportEach: () => verifyDeviceJwt(deviceJwt, { ...options, keyCache: noCache }),
    verifyBatchCached: () => verifyBatch(batchJws, { keys, keyCache: cache }),
    verifyBatchImportEach: () => verifyBatch(batchJws, { keys, keyCache: noCache }),
    joseCompactVerify: () =>
      compactVerify(deviceJwt, importedPublicKey, { algorithms: [pair.alg] }),
  };
}

const groups = [
  ['EdDSA', await fixture('Ed25519')],
  ['ES256', await fixture('P-256')],
] as const;

for (const [alg, f] of groups) {
  const jwt = splitForFloor(f.deviceJwt);
  const batch = splitForFloor(f.batchJws);

  describe(`${alg} sign`, () => {
    bench('node:crypto sign (floor)', () => {
      f.sign(jwt.input);
    });
    bench('jose sign', async () => {
      await f.signDeviceJwt();
    });
  });

  describe(`${alg} verify`, () => {
    bench('node:crypto verify (floor)', () => {
      if (!f.verifyRaw(jwt.input, jwt.signature)) throw new Error('floor did not verify');
    });
    bench('jose compactVerify (no policy)', async () => {
      await f.joseCompactVerify();
    });
    bench('verify (key cache)', async () => {
      await f.verifyCached();
    });
    bench('verify (import each time)', async () => {
      await f.verifyImportEach();
    });
  });

  describe(`${alg} batch verify (100 records)`, () => {
    bench('node:crypto verify (floor)', () => {
      if (!f.verifyRaw(batch.input, batch.signature)) throw new Error('floor did not verify');
    });
    bench('verify (key cache)', async () => {
      await f.verifyBatchCached();
    });
    bench('verify (import each time)', async () => {
      await f.verifyBatchImportEach();
    });
  });
}
