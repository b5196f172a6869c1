import { createHash, randomBytes } from 'node:crypto';
import type { Manifest } from '@outpost/protocol/ota';
import type { KeyPair } from '@outpost/signing/keys';
import { signManifest } from '@outpost/signing/manifest';
import { ADMIN, type ApiResponse } from './ingest-app.js';

/** A firmware image and its manifest signed by a release key, as `outpost firmware sign` makes. */
export interface TestFirmware {
  bytes: Buffer;
  payload: Manifest;
  manifest: string;
}

export async function makeFirmware(
  releaseKey: KeyPair,
  extra: Partial<Manifest> & { bytes?: Buffer } = {},
): Promise<TestFirmware> {
  const { bytes: given, ...fields } = extra;
  const bytes = given ?? randomBytes(200_000);
  const payload: Manifest = {
    name: 'Boiler controller',
    component: 'main',
    version: '1.1.0',
    hardware: ['sim-a'],
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    createdAt: Math.floor(Date.now() / 1000),
    ...fields,
  };
  return { bytes, payload, manifest: await signManifest(releaseKey.privateJwk, payload) };
}

/** `POST /api/v1/firmware`: the artifact as the body, the manifest in its header. */
export async function uploadFirmware(
  url: string,
  firmware: { bytes: Buffer | Uint8Array; manifest: string | undefined },
  token = ADMIN,
): Promise<ApiResponse> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${token}`,
    'content-type': 'application/octet-stream',
  };
  if (firmware.manifest !== undefined) headers['x-outpost-manifest'] = firmware.manifest;
  const res = await fetch(`${url}/api/v1/firmware`, {
    method: 'POST',
    headers,
    body: firmware.bytes,
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}
