import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError, UsageError } from '../errors.js';
import {
  buildManifest,
  checkArtifact,
  digestFile,
  manifestPathOf,
  readManifestPayload,
} from './firmware.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-cli-fw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const flags = {
  name: 'Boiler controller',
  component: 'main',
  version: '1.2.0',
  hardware: ['esp32-c3', 'esp32-c3', 'esp32-s3'],
};
const digest = { size: 3, sha256: 'ab'.repeat(32) };
const jwsOf = (payload: unknown) =>
  `eyJhbGciOiJFZERTQSJ9.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;

describe('firmware sign', () => {
  it('writes the manifest next to the file', () => {
    expect(manifestPathOf('/fw/boiler-1.2.0.bin')).toBe('/fw/boiler-1.2.0.bin.jws');
  });

  it('digests a file as it is read', async () => {
    const path = join(dir, 'fw.bin');
    writeFileSync(path, 'abc');
    expect(await digestFile(path)).toEqual({
      size: 3,
      sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    });
    await expect(digestFile(join(dir, 'missing.bin'))).rejects.toBeInstanceOf(CliError);
  });

  it('builds the PROTOCOL.md §8 manifest, each hardware id once, createdAt in seconds', () => {
    expect(buildManifest({ ...flags, minVersion: '1.0.0' }, digest, 1_700_000_000_999)).toEqual({
      name: 'Boiler controller',
      component: 'main',
      version: '1.2.0',
      hardware: ['esp32-c3', 'esp32-s3'],
      size: 3,
      sha256: 'ab'.repeat(32),
      minVersion: '1.0.0',
      createdAt: 1_700_000_000,
    });
  });

  it('refuses a manifest the protocol would refuse', () => {
    expect(() => buildManifest(flags, { size: 0, sha256: digest.sha256 }, 0)).toThrow(UsageError);
  });
});

describe('firmware upload', () => {
  const manifest = buildManifest(flags, digest, 1_700_000_000_000);

  it('reads the manifest payload without verifying it', () => {
    expect(readManifestPayload(jwsOf(manifest), 'm.jws')).toEqual(manifest);
    expect(() => readManifestPayload('not a jws', 'm.jws')).toThrow(/not a signed manifest/);
    expect(() => readManifestPayload(jwsOf({ name: 'x' }), 'm.jws')).toThrow(
      /not a valid manifest/,
    );
  });

  it('refuses, before sending, a file its manifest does not describe', () => {
    expect(() => checkArtifact(manifest, digest, 'fw.bin')).not.toThrow();
    expect(() => checkArtifact(manifest, { ...digest, size: 4 }, 'fw.bin')).toThrow(
      /4 bytes, manifest says 3/,
    );
    expect(() => checkArtifact(manifest, { ...digest, sha256: 'cd'.repeat(32) }, 'fw.bin')).toThrow(
      /sha256 differs/,
    );
  });
});
