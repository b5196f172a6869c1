import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { signManifest } from '@outpost/signing/manifest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFirmware, uploadFirmware } from './support/firmware.js';
import {
  type ApiResponse,
  enrollWithReply,
  type InProcessIngest,
  startInProcess,
  waitUntil,
} from './support/ingest-app.js';
import { SimDevice } from './support/ota-device.js';

// Real parts: the whole ingest app in process (Nest/Fastify, aedes on TCP, SQLite registry
// and OTA store, artifacts on disk), mqtt.js devices verifying signed commands, HTTP
// downloads over loopback. The clock is a TestClock; nothing is mocked.

const MAX_BYTES = 1_000_000;
const DOWNLOADS_PER_MINUTE = 8;

let ingest: InProcessIngest;
let release: KeyPair;
const sims: SimDevice[] = [];

beforeAll(async () => {
  ingest = await startInProcess({
    INGEST_FIRMWARE_MAX_BYTES: String(MAX_BYTES),
    INGEST_FIRMWARE_DOWNLOADS_PER_MINUTE: String(DOWNLOADS_PER_MINUTE),
    INGEST_OTA_TICK_MS: '50',
  });
  release = await generateKeyPair('Ed25519');
  const added = await ingest.api('POST', '/api/v1/release-keys', {
    publicKey: release.publicJwk,
    name: 'release 2025',
  });
  expect(added.status).toBe(201);
});

afterAll(async () => {
  await Promise.all(sims.map((s) => s.close()));
  await ingest?.close();
});

async function sim(id: string, options: ConstructorParameters<typeof SimDevice>[4] = {}) {
  const { pair, reply } = await enrollWithReply(ingest, id, { tags: { lab: 'ota' } });
  const device = new SimDevice(ingest, id, pair, reply, options);
  sims.push(device);
  return device;
}

async function tokenWith(role: string): Promise<string> {
  const issued = await ingest.api('POST', '/api/v1/tokens', { name: role, roles: [role] });
  return issued.body.token as string;
}

/** A rollout of `firmwareId` to these devices, all in one wave. */
async function rolloutTo(firmwareId: string, devices: string[]): Promise<ApiResponse> {
  const created = await ingest.api('POST', '/api/v1/rollouts', {
    firmwareId,
    target: { devices },
    waves: [100],
    soakSeconds: 0,
    abortFailureRate: 1,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created;
}

async function download(
  device: SimDevice,
  firmwareId: string,
  headers: Record<string, string> = {},
) {
  const { token } = await signDeviceJwt((device as unknown as { pair: KeyPair }).pair.privateJwk, {
    deviceId: device.id,
    now: () => ingest.clock.now() / 1000,
  });
  return fetch(`${ingest.url}/api/v1/firmware/${firmwareId}/artifact`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
}

describe('release keys', () => {
  it('trusts public keys only, once each, and hands them to devices at enrollment', async () => {
    const again = await ingest.api('POST', '/api/v1/release-keys', {
      publicKey: release.publicJwk,
    });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ kid: release.kid, alg: 'EdDSA', name: 'release 2025' });

    const privateKey = await ingest.api('POST', '/api/v1/release-keys', {
      publicKey: release.privateJwk,
    });
    expect(privateKey.status).toBe(400);
    expect(JSON.stringify(privateKey.body)).toContain('private key material');

    const other = await generateKeyPair('P-256');
    const wrongKid = await ingest.api('POST', '/api/v1/release-keys', {
      publicKey: { ...other.publicJwk, kid: release.kid },
    });
    expect(wrongKid.body.code).toBe('release_key_kid_mismatch');

    const viewer = await tokenWith('viewer');
    const refused = await ingest.api(
      'POST',
      '/api/v1/release-keys',
      { publicKey: other.publicJwk },
      { token: viewer },
    );
    expect(refused.status).toBe(403);

    const listed = await ingest.api('GET', '/api/v1/release-keys');
    expect(listed.body).toEqual([
      expect.objectContaining({ kid: release.kid, revokedAt: null, publicKey: release.publicJwk }),
    ]);
    expect(JSON.stringify(listed.body)).not.toContain('"d"');

    const { reply } = await enrollWithReply(ingest, 'fresh-1');
    expect(reply.releaseKeys).toEqual([release.publicJwk]);
  });

  it('sends keys.release to online devices when the set changes, and to the others when they connect', async () => {
    const online = await sim('keys-online');
    const away = await sim('keys-away');
    await online.connect();
    await waitUntil(
      async () =>
        (
          (await ingest.api('GET', '/api/v1/devices/keys-online')).body.connectivity as {
            online: boolean;
          }
        ).online,
      'keys-online to be online',
    );

    const second = await generateKeyPair('P-256');
    const firmwareToken = await tokenWith('firmware');
    const added = await ingest.api(
      'POST',
      '/api/v1/release-keys',
      { publicKey: second.publicJwk, name: 'successor' },
      { token: firmwareToken },
    );
    expect(added.status).toBe(201);

    const kids = (d: SimDevice) => d.releaseKeys.map((k) => k.kid).sort();
    await waitUntil(() => online.releaseKeys.length === 2, 'keys.release to the online device');
    expect(kids(online)).toEqual([release.kid, second.kid].sort());
    expect(online.commands.filter((c) => c.type === 'keys.release')).toHaveLength(1);
    expect(online.refused).toEqual([]);

    // Away during the change: told when it subscribes to its commands.
    expect(away.releaseKeys).toHaveLength(1);
    await away.connect();
    await waitUntil(() => away.releaseKeys.length === 2, 'keys.release on connect');

    // Reconnecting does not send the same keys again.
    await online.close();
    await online.connect();
    await new Promise((r) => setTimeout(r, 300));
    expect(online.commands.filter((c) => c.type === 'keys.release')).toHaveLength(1);

    // Revoking tells the devices too; the last key cannot go.
    const revoked = await ingest.api('DELETE', `/api/v1/release-keys/${second.kid}`);
    expect(revoked.body).toMatchObject({ kid: second.kid, revokedBy: expect.any(String) });
    await waitUntil(() => online.releaseKeys.length === 1, 'keys.release after revocation');
    expect(kids(online)).toEqual([release.kid]);
    const last = await ingest.api('DELETE', `/api/v1/release-keys/${release.kid}`);
    expect(last.status).toBe(409);
    expect(last.body.code).toBe('last_release_key');
    // A revoked key is never trusted again.
    const back = await ingest.api('POST', '/api/v1/release-keys', { publicKey: second.publicJwk });
    expect(back.body.code).toBe('release_key_revoked');
  });
});

describe('firmware upload', () => {
  const firmwareDir = () => join(ingest.dataDir, 'firmware');

  it('refuses unknown signers, forged or invalid manifests, wrong bytes and oversized firmware', async () => {
    const stranger = await generateKeyPair('Ed25519');
    const good = await makeFirmware(release, { version: '9.0.0' });

    const unknown = await uploadFirmware(ingest.url, await makeFirmware(stranger));
    expect([unknown.status, unknown.body.code]).toEqual([400, 'release_key_unknown']);

    // A manifest whose payload was changed after signing.
    const [header, , signature] = good.manifest.split('.');
    const forgedPayload = Buffer.from(
      JSON.stringify({ ...good.payload, hardware: ['sim-a', 'sim-b'] }),
    ).toString('base64url');
    const forged = await uploadFirmware(ingest.url, {
      bytes: good.bytes,
      manifest: `${header}.${forgedPayload}.${signature}`,
    });
    expect([forged.status, forged.body.code]).toEqual([400, 'manifest_signature_invalid']);

    const missing = await uploadFirmware(ingest.url, { bytes: good.bytes, manifest: undefined });
    expect([missing.status, missing.body.code]).toEqual([400, 'manifest_missing']);

    const invalid = await uploadFirmware(ingest.url, {
      bytes: good.bytes,
      manifest: await signManifest(release.privateJwk, { ...good.payload, version: 'v2' }),
    });
    expect([invalid.status, invalid.body.code]).toEqual([400, 'manifest_invalid']);

    const otherBytes = Buffer.from(good.bytes);
    otherBytes[5] = otherBytes[5]! ^ 1;
    const tampered = await uploadFirmware(ingest.url, {
      bytes: otherBytes,
      manifest: good.manifest,
    });
    expect([tampered.status, tampered.body.code]).toEqual([400, 'artifact_sha256_mismatch']);
    const short = await uploadFirmware(ingest.url, {
      bytes: good.bytes.subarray(10),
      manifest: good.manifest,
    });
    expect([short.status, short.body.code]).toEqual([400, 'artifact_size_mismatch']);
    const long = await uploadFirmware(ingest.url, {
      bytes: Buffer.concat([good.bytes, Buffer.alloc(10)]),
      manifest: good.manifest,
    });
    expect([long.status, long.body.code]).toEqual([400, 'artifact_size_mismatch']);

    const big = await makeFirmware(release, {
      version: '9.1.0',
      bytes: Buffer.alloc(MAX_BYTES + 1),
    });
    const tooLarge = await uploadFirmware(ingest.url, big);
    expect([tooLarge.status, tooLarge.body.code]).toEqual([413, 'firmware_too_large']);

    const viewer = await uploadFirmware(ingest.url, good, await tokenWith('viewer'));
    expect(viewer.status).toBe(403);

    expect((await ingest.api('GET', '/api/v1/firmware')).body.items).toEqual([]);
    expect(readdirSync(firmwareDir())).toEqual(['incoming']);
    expect(readdirSync(join(firmwareDir(), 'incoming'))).toEqual([]);
  });

  it('stores the artifact under its sha256, never under the name a manifest gives', async () => {
    const evil = await makeFirmware(release, {
      version: '1.1.0',
      name: '../../../../../tmp/outpost-evil-firmware',
    });
    const stored = await uploadFirmware(ingest.url, evil, await tokenWith('firmware'));
    expect(stored.status).toBe(201);
    expect(stored.body).toMatchObject({
      name: '../../../../../tmp/outpost-evil-firmware',
      component: 'main',
      version: '1.1.0',
      size: evil.bytes.length,
      sha256: evil.payload.sha256,
      kid: release.kid,
      manifest: evil.manifest,
    });
    expect(readdirSync(firmwareDir()).sort()).toEqual([evil.payload.sha256, 'incoming']);
    expect(readFileSync(join(firmwareDir(), evil.payload.sha256)).equals(evil.bytes)).toBe(true);
    expect(existsSync('/tmp/outpost-evil-firmware')).toBe(false);

    // The same upload again is answered with the stored firmware.
    const again = await uploadFirmware(ingest.url, evil);
    expect([again.status, again.body.id]).toEqual([200, stored.body.id]);
    // Other bytes for a stored version are refused: versions are not reused.
    const reuse = await uploadFirmware(
      ingest.url,
      await makeFirmware(release, { version: '1.1.0' }),
    );
    expect([reuse.status, reuse.body.code]).toEqual([409, 'firmware_exists']);

    const one = await ingest.api('GET', `/api/v1/firmware/${stored.body.id}`);
    expect(one.body).toEqual(stored.body);
    const list = await ingest.api('GET', '/api/v1/firmware?component=main');
    expect((list.body.items as { id: string }[]).map((f) => f.id)).toEqual([stored.body.id]);
    expect((await ingest.api('GET', '/api/v1/firmware/nope')).status).toBe(404);
  });
});

describe('artifact downloads', () => {
  let firmware: Awaited<ReturnType<typeof makeFirmware>>;
  let firmwareId: string;

  beforeAll(async () => {
    firmware = await makeFirmware(release, { version: '2.0.0' });
    const stored = await uploadFirmware(ingest.url, firmware);
    expect(stored.status).toBe(201);
    firmwareId = stored.body.id as string;
  });

  it('serves whole artifacts and byte ranges (206, Content-Range, 416, If-Range) to offered devices', async () => {
    // Held: the device keeps the offer and downloads nothing by itself.
    const device = await sim('range-1', { hold: true });
    await rolloutTo(firmwareId, [device.id]);
    const size = firmware.bytes.length;

    const full = await download(device, firmwareId);
    expect(full.status).toBe(200);
    expect(full.headers.get('content-length')).toBe(String(size));
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(full.headers.get('etag')).toBe(`"${firmware.payload.sha256}"`);
    expect(Buffer.from(await full.arrayBuffer()).equals(firmware.bytes)).toBe(true);

    const head = await download(device, firmwareId, { range: 'bytes=0-99' });
    expect(head.status).toBe(206);
    expect(head.headers.get('content-range')).toBe(`bytes 0-99/${size}`);
    expect(Buffer.from(await head.arrayBuffer()).equals(firmware.bytes.subarray(0, 100))).toBe(
      true,
    );

    const rest = await download(device, firmwareId, { range: 'bytes=150000-' });
    expect(rest.status).toBe(206);
    expect(rest.headers.get('content-range')).toBe(`bytes 150000-${size - 1}/${size}`);
    expect(Buffer.from(await rest.arrayBuffer()).equals(firmware.bytes.subarray(150_000))).toBe(
      true,
    );

    const tail = await download(device, firmwareId, { range: 'bytes=-10' });
    expect(Buffer.from(await tail.arrayBuffer()).equals(firmware.bytes.subarray(size - 10))).toBe(
      true,
    );

    const past = await download(device, firmwareId, { range: `bytes=${size}-` });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${size}`);
    expect(((await past.json()) as { code: string }).code).toBe('range_not_satisfiable');

    const stale = await download(device, firmwareId, { range: 'bytes=0-9', 'if-range': '"old"' });
    expect(stale.status).toBe(200);
    expect((await stale.arrayBuffer()).byteLength).toBe(size);
  });

  it('answers 404 to devices it was not offered, and 401 without a device JWT', async () => {
    const stranger = await sim('range-stranger');
    const res = await download(stranger, firmwareId);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { code: string }).code).toBe('firmware_not_found');
    const url = `${ingest.url}/api/v1/firmware/${firmwareId}/artifact`;
    expect((await fetch(url)).status).toBe(401);
    const withApiToken = await fetch(url, {
      headers: { authorization: `Bearer ${await tokenWith('admin')}` },
    });
    expect(withApiToken.status).toBe(401);
  });

  it('rate-limits downloads per device', async () => {
    const busy = await sim('rate-1', { hold: true });
    const calm = await sim('rate-2', { hold: true });
    await rolloutTo(firmwareId, [busy.id, calm.id]);
    for (let i = 0; i < DOWNLOADS_PER_MINUTE; i++) {
      const res = await download(busy, firmwareId, { range: 'bytes=0-0' });
      expect(res.status).toBe(206);
      await res.arrayBuffer();
    }
    const limited = await download(busy, firmwareId, { range: 'bytes=0-0' });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    const other = await download(calm, firmwareId, { range: 'bytes=0-0' });
    expect(other.status).toBe(206);
    await other.arrayBuffer();
    ingest.clock.advance(61_000);
    const later = await download(busy, firmwareId, { range: 'bytes=0-0' });
    expect(later.status).toBe(206);
    await later.arrayBuffer();
  });

  it('refuses to serve an artifact changed on disk, until it is uploaded again', async () => {
    const device = await sim('tamper-read', { hold: true });
    await rolloutTo(firmwareId, [device.id]);
    const path = join(ingest.dataDir, 'firmware', firmware.payload.sha256);
    const bytes = readFileSync(path);
    bytes[1234] = bytes[1234]! ^ 0xff;
    writeFileSync(path, bytes);

    const refused = await download(device, firmwareId, { range: 'bytes=0-99' });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { code: string }).code).toBe('artifact_corrupt');

    const repaired = await uploadFirmware(ingest.url, firmware);
    expect(repaired.status).toBe(200);
    const served = await download(device, firmwareId);
    expect(served.status).toBe(200);
    expect(Buffer.from(await served.arrayBuffer()).equals(firmware.bytes)).toBe(true);
  });
});
