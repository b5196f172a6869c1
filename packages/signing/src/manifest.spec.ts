import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { generateKeyPair } from './keys.js';
import { signManifest, verifyManifest } from './manifest.js';

const manifestSchema = z.object({
  name: z.string(),
  component: z.string(),
  version: z.string().regex(/^\d+\.\d+\.\d+$/),
  hardware: z.array(z.string()).min(1),
  size: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  minVersion: z.string().optional(),
  createdAt: z.number().int(),
});

const manifest = {
  name: 'sensor-fw',
  component: 'main',
  version: '1.4.2',
  hardware: ['esp32-s3'],
  size: 734_512,
  sha256: 'ab'.repeat(32),
  createdAt: 1_700_000_000,
};

describe.each(['Ed25519', 'P-256'] as const)('manifest signed by a %s release key', (type) => {
  it('verifies against the trusted release keys and names the one that signed', async () => {
    const alice = await generateKeyPair(type);
    const bob = await generateKeyPair('Ed25519');
    const jws = await signManifest(alice.privateJwk, manifest);
    expect(decodeProtectedHeader(jws)).toMatchObject({
      typ: 'outpost-manifest+jws',
      kid: alice.kid,
    });
    const verified = await verifyManifest(jws, {
      trustedKeys: [bob.publicJwk, alice.publicJwk],
      schema: manifestSchema,
    });
    expect(verified.kid).toBe(alice.kid);
    expect(verified.payload.version).toBe('1.4.2');
  });
});

describe('verifyManifest', () => {
  it('returns the payload as unknown without a schema', async () => {
    const release = await generateKeyPair();
    const jws = await signManifest(release.privateJwk, manifest);
    const { payload } = await verifyManifest(jws, { trustedKeys: [release.publicJwk] });
    expect(payload).toEqual(manifest);
  });

  it('refuses a payload the schema rejects', async () => {
    const release = await generateKeyPair();
    const jws = await signManifest(release.privateJwk, { ...manifest, sha256: 'nope' });
    await expect(
      verifyManifest(jws, { trustedKeys: [release.publicJwk], schema: manifestSchema }),
    ).rejects.toMatchObject({ code: 'payload_invalid', details: { issues: [{ path: 'sha256' }] } });
  });

  it('refuses everything when no release key is trusted', async () => {
    const release = await generateKeyPair();
    const jws = await signManifest(release.privateJwk, manifest);
    await expect(verifyManifest(jws, { trustedKeys: [] })).rejects.toMatchObject({
      code: 'kid_unknown',
    });
  });

  it('refuses a manifest that is not a JSON object', async () => {
    const release = await generateKeyPair();
    const jws = await signManifest(release.privateJwk, ['sensor-fw']);
    await expect(verifyManifest(jws, { trustedKeys: [release.publicJwk] })).rejects.toMatchObject({
      code: 'token_malformed',
    });
  });
});
