import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFirmware, type TestFirmware, uploadFirmware } from './support/firmware.js';
import {
  ADMIN,
  enrollWithReply,
  type InProcessIngest,
  startInProcess,
  waitUntil,
} from './support/ingest-app.js';
import { type Outcome, SimDevice, type SimOptions } from './support/ota-device.js';

// Real parts: the whole ingest app in process (Nest/Fastify, aedes on TCP, SQLite registry
// and OTA store, artifacts on disk, the rollout timer), simulated devices as mqtt.js clients
// that verify every command and manifest and download over HTTP with Range, and the SSE
// stream over HTTP. Time is a TestClock the tests move for soak times and timeouts.

const SOAK_S = 60;

let ingest: InProcessIngest;
let release: KeyPair;
const sims: SimDevice[] = [];

interface Rollout {
  id: string;
  status: string;
  reason: string | null;
  currentWave: number;
  waves: { phase: string; devices: number; counts: Record<string, number> }[];
  totals: Record<string, number>;
  devices: {
    deviceId: string;
    position: number;
    wave: number;
    state: string;
    reason: string | null;
    version: string | null;
  }[];
}

beforeAll(async () => {
  ingest = await startInProcess({
    INGEST_OTA_TICK_MS: '50',
    INGEST_FIRMWARE_DOWNLOADS_PER_MINUTE: '1000',
  });
  release = await generateKeyPair('Ed25519');
  expect(
    (await ingest.api('POST', '/api/v1/release-keys', { publicKey: release.publicJwk })).status,
  ).toBe(201);
});

afterAll(async () => {
  await Promise.all(sims.map((s) => s.close()));
  await ingest?.close();
});

async function fleet(
  prefix: string,
  n: number,
  options: (i: number) => SimOptions = () => ({}),
  connect = true,
): Promise<SimDevice[]> {
  const devices: SimDevice[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${prefix}-${String(i).padStart(2, '0')}`;
    const { pair, reply } = await enrollWithReply(ingest, id, { tags: { fleet: prefix } });
    const device = new SimDevice(ingest, id, pair, reply, options(i));
    if (connect) await device.connect();
    devices.push(device);
    sims.push(device);
  }
  return devices;
}

async function upload(extra: Parameters<typeof makeFirmware>[1] = {}) {
  const firmware = await makeFirmware(release, extra);
  const stored = await uploadFirmware(ingest.url, firmware);
  expect(stored.status, JSON.stringify(stored.body)).toBe(201);
  return { ...firmware, id: stored.body.id as string };
}

async function create(body: Record<string, unknown>): Promise<Rollout> {
  const created = await ingest.api('POST', '/api/v1/rollouts', {
    soakSeconds: SOAK_S,
    abortFailureRate: 0.2,
    minDevices: 5,
    ...body,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body as unknown as Rollout;
}

async function get(id: string): Promise<Rollout> {
  return (await ingest.api('GET', `/api/v1/rollouts/${id}`)).body as unknown as Rollout;
}

/** Waits until the rollout satisfies `check`, returning it. */
function until(id: string, check: (r: Rollout) => boolean, what: string): Promise<Rollout> {
  return waitUntil(
    async () => {
      const r = await get(id);
      return check(r) ? r : undefined;
    },
    what,
    20_000,
  );
}

const device = (r: Rollout, id: string) => r.devices.find((d) => d.deviceId === id)!;

/** Collects `rollouts` events from the SSE stream. */
async function streamRollouts() {
  const controller = new AbortController();
  const res = await fetch(`${ingest.url}/api/v1/stream?types=rollouts`, {
    headers: { authorization: `Bearer ${ADMIN}` },
    signal: controller.signal,
  });
  const events: { kind: string; rolloutId: string; [k: string]: unknown }[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame.split('\n').find((l) => l.startsWith('data: '));
          if (frame.includes('event: rollouts') && data) events.push(JSON.parse(data.slice(6)));
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
  })();
  return {
    events,
    close: async () => {
      controller.abort();
      await reading;
    },
  };
}

describe('rollouts to simulated devices', () => {
  let v110: TestFirmware & { id: string };

  beforeAll(async () => {
    v110 = await upload({ version: '1.1.0' });
  });

  it('rolls out to 20 devices in three waves with soak, one failing device, to completion', async () => {
    const devices = await fleet('a', 20, (i) => ({
      // One device boots the new version, fails its health check and rolls back; two have
      // their first download cut short and resume it with Range.
      outcome: i === 7 ? 'rollback' : 'succeed',
      ...(i === 3 || i === 11 ? { truncateAt: 50_000 } : {}),
    }));
    const stream = await streamRollouts();
    const created = await create({
      firmwareId: v110.id,
      target: { tags: { fleet: 'a' } },
      waves: [10, 50, 100],
    });
    expect(created.waves.map((w) => w.devices)).toEqual([2, 8, 10]);
    expect(created.waves[0]!.phase).toBe('active');
    expect(created.totals.offered).toBe(2);
    const order = [...created.devices]
      .sort((a, b) => a.position - b.position)
      .map((d) => d.deviceId);

    // Wave 1 finishes, then soaks: nobody in wave 2 is offered before the soak is over.
    let r = await until(created.id, (x) => x.waves[0]!.phase === 'soaking', 'wave 1 to soak');
    await new Promise((res) => setTimeout(res, 300));
    r = await get(created.id);
    expect(r.waves[1]!.phase).toBe('pending');
    expect(r.devices.filter((d) => d.wave === 1).every((d) => d.state === 'pending')).toBe(true);
    const byId = new Map(devices.map((d) => [d.id, d]));
    expect(order.slice(2).every((id) => byId.get(id)!.offers.length === 0)).toBe(true);

    ingest.clock.advance(SOAK_S * 1000);
    r = await until(created.id, (x) => x.waves[1]!.phase === 'soaking', 'wave 2 to soak');
    expect(order.slice(10).every((id) => byId.get(id)!.offers.length === 0)).toBe(true);
    ingest.clock.advance(SOAK_S * 1000);
    r = await until(created.id, (x) => x.status === 'completed', 'the rollout to complete');

    expect(r.totals).toMatchObject({ devices: 20, succeeded: 19, rolledBack: 1, failed: 0 });
    expect(r.waves.map((w) => w.phase)).toEqual(['done', 'done', 'done']);
    expect(device(r, 'a-07')).toMatchObject({
      state: 'rolled_back',
      reason: 'health check failed after boot',
      version: '1.0.0',
    });
    for (const d of devices) {
      expect(d.offers, d.id).toHaveLength(1);
      expect(d.refused).toEqual([]);
      expect(d.unit().versions.main).toBe(d.id === 'a-07' ? '1.0.0' : '1.1.0');
    }
    // The cut downloads resumed where they stopped.
    for (const id of ['a-03', 'a-11']) {
      const requests = byId.get(id)!.downloads;
      expect(requests.map((q) => [q.status, q.range, q.contentRange])).toEqual([
        [200, null, null],
        [206, 'bytes=50000-', `bytes 50000-${v110.bytes.length - 1}/${v110.bytes.length}`],
      ]);
      expect(requests[0]!.bytes).toBe(50_000);
    }

    // The stream told the story: device changes and wave summaries, ending completed.
    await waitUntil(
      () =>
        stream.events.some(
          (e) =>
            e.kind === 'progress' &&
            e.rolloutId === created.id &&
            (e.rollout as Rollout).status === 'completed',
        ),
      'a completed progress event',
    );
    const mine = stream.events.filter((e) => e.rolloutId === created.id);
    const states = mine
      .filter((e) => e.kind === 'device' && (e.device as { deviceId: string }).deviceId === 'a-07')
      .map((e) => (e.device as { state: string }).state);
    expect(states).toEqual([
      'offered',
      'downloading',
      'verifying',
      'installing',
      'rebooting',
      'trial',
      'rolled_back',
    ]);
    await stream.close();
  });

  it('aborts itself after the first wave when 30% of the devices fail, offering no one else', async () => {
    // Offers are held until the rollout order is known: then every third device in rollout
    // order (6 of 20, 30%) is made to fail, spread evenly over the waves.
    const devices = await fleet('b', 20, () => ({ hold: true }));
    const created = await create({
      firmwareId: v110.id,
      target: { tags: { fleet: 'b' } },
      waves: [25, 50, 100],
    });
    const byId = new Map(devices.map((d) => [d.id, d]));
    for (const d of created.devices) {
      const failing = d.position % 3 === 0 && d.position < 18;
      byId.get(d.deviceId)!.unit().outcome = (failing ? 'rollback' : 'succeed') as Outcome;
    }
    for (const d of devices) d.release();

    let r = await until(created.id, (x) => x.status === 'aborted', 'the rollout to abort');
    expect(r.reason).toBe('failure rate 40% (2 of 5 finished devices) exceeds 20%');
    expect(r.waves.map((w) => w.phase)).toEqual(['done', 'pending', 'pending']);
    expect(r.totals).toMatchObject({ succeeded: 3, rolledBack: 2, pending: 15 });

    // Time passes; nothing more happens.
    ingest.clock.advance(SOAK_S * 10_000);
    await new Promise((res) => setTimeout(res, 300));
    r = await get(created.id);
    expect(r.status).toBe('aborted');
    expect(r.totals.pending).toBe(15);
    const offered = devices.filter((d) => d.offers.length > 0);
    expect(offered).toHaveLength(5);
    for (const d of r.devices.filter((x) => x.state === 'rolled_back')) {
      expect(byId.get(d.deviceId)!.unit().versions.main).toBe('1.0.0');
    }
    expect((await ingest.api('POST', `/api/v1/rollouts/${created.id}/resume`)).body.code).toBe(
      'rollout_finished',
    );
  });

  it('records why devices refuse: wrong hardware, downgrade, too old to update; the current version succeeds', async () => {
    const [wrongHw, newer, tooOld, current, ok] = await fleet(
      'c',
      5,
      (i) =>
        [
          { hardware: 'sim-b' },
          { version: '3.0.0' },
          { version: '0.9.0' },
          { version: '1.2.0' },
          {},
        ][i]!,
    );
    const v120 = await upload({ version: '1.2.0', minVersion: '1.0.0' });
    const created = await create({
      firmwareId: v120.id,
      target: { tags: { fleet: 'c' } },
      waves: [100],
      abortFailureRate: 1,
    });
    const r = await until(created.id, (x) => x.status === 'completed', 'the rollout to complete');
    expect(device(r, wrongHw!.id)).toMatchObject({
      state: 'failed',
      reason: 'hardware: sim-b is not in sim-a',
    });
    expect(device(r, newer!.id)).toMatchObject({
      state: 'failed',
      reason: 'downgrade: runs 3.0.0, offered 1.2.0',
      version: '3.0.0',
    });
    expect(device(r, tooOld!.id)).toMatchObject({
      state: 'failed',
      reason: 'min_version: runs 0.9.0, needs 1.0.0',
    });
    expect(device(r, current!.id)).toMatchObject({ state: 'succeeded', version: '1.2.0' });
    expect(device(r, ok!.id)).toMatchObject({ state: 'succeeded', version: '1.2.0' });
    // Refusing devices never downloaded anything and still run what they ran.
    expect(wrongHw!.downloads).toEqual([]);
    expect(newer!.unit().versions.main).toBe('3.0.0');

    // A rollout may name an older firmware as a rollback target: then it installs.
    const back = await create({
      firmwareId: v110.id,
      target: { devices: [ok!.id] },
      waves: [100],
      rollback: true,
    });
    expect(back.devices).toHaveLength(1);
    const done = await until(back.id, (x) => x.status === 'completed', 'the rollback');
    expect(device(done, ok!.id)).toMatchObject({ state: 'succeeded', version: '1.1.0' });
    expect(ok!.offers.at(-1)!.rollbackTarget).toBe('1.1.0');
  });

  it('ends in failed with the reason when the artifact is tampered with, on disk or on the way', async () => {
    const [onDisk, onTheWay] = await fleet('d', 2, (i) =>
      i === 1 ? { corruptDownload: true } : {},
    );
    const tampered = await upload({ version: '1.3.0' });
    const path = join(ingest.dataDir, 'firmware', tampered.payload.sha256);
    const bytes = readFileSync(path);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(path, bytes);
    const first = await create({
      firmwareId: tampered.id,
      target: { devices: [onDisk!.id] },
      waves: [100],
      abortFailureRate: 1,
    });
    let r = await until(first.id, (x) => x.status === 'completed', 'the first rollout to end');
    expect(device(r, onDisk!.id)).toMatchObject({
      state: 'failed',
      reason: 'download: HTTP 503 artifact_corrupt',
      version: '1.0.0',
    });

    const intact = await upload({ version: '1.4.0' });
    const second = await create({
      firmwareId: intact.id,
      target: { devices: [onTheWay!.id] },
      waves: [100],
      abortFailureRate: 1,
    });
    r = await until(second.id, (x) => x.status === 'completed', 'the second rollout to end');
    expect(device(r, onTheWay!.id)).toMatchObject({
      state: 'failed',
      reason: 'sha256 mismatch',
      version: '1.0.0',
    });
    expect(onTheWay!.unit().versions.main).toBe('1.0.0');
  });

  it('records a device whose agent dies mid-install and says so after restarting', async () => {
    const [crashing] = await fleet('e', 1, () => ({ outcome: 'crash-during-install' }));
    const created = await create({
      firmwareId: v110.id,
      target: { devices: [crashing!.id] },
      waves: [100],
      abortFailureRate: 1,
    });
    const r = await until(created.id, (x) => x.status === 'completed', 'the rollout to end');
    expect(device(r, crashing!.id)).toMatchObject({
      state: 'failed',
      reason: 'interrupted: the install did not complete',
      version: '1.0.0',
    });
    expect(crashing!.offers).toHaveLength(1);
  });

  it('offers a device that was offline when it connects, and fails one that never answers with timeout', async () => {
    const [late, silent] = await fleet('f', 2, () => ({}), false);
    const created = await create({
      firmwareId: v110.id,
      target: { tags: { fleet: 'f' } },
      waves: [100],
      abortFailureRate: 1,
      offerTimeoutSeconds: 300,
    });
    expect(created.devices.map((d) => d.state)).toEqual(['offered', 'offered']);
    await late!.connect();
    let r = await until(
      created.id,
      (x) => device(x, late!.id).state === 'succeeded',
      'the late device to update',
    );
    expect(device(r, silent!.id).state).toBe('offered');
    ingest.clock.advance(300_000);
    r = await until(created.id, (x) => x.status === 'completed', 'the timeout');
    expect(device(r, silent!.id)).toMatchObject({ state: 'failed', reason: 'timeout' });
  });

  it('pauses (no new wave, no timeouts), resumes and cancels', async () => {
    const devices = await fleet('g', 4);
    const created = await create({
      firmwareId: v110.id,
      target: { tags: { fleet: 'g' } },
      waves: [50, 100],
    });
    await until(created.id, (x) => x.waves[0]!.phase === 'soaking', 'wave 1 to soak');
    const paused = await ingest.api('POST', `/api/v1/rollouts/${created.id}/pause`);
    expect([paused.status, paused.body.status]).toEqual([200, 'paused']);
    ingest.clock.advance(SOAK_S * 1000);
    await new Promise((res) => setTimeout(res, 300));
    let r = await get(created.id);
    expect(r.status).toBe('paused');
    expect(r.totals.pending).toBe(2);
    expect(devices.filter((d) => d.offers.length > 0)).toHaveLength(2);
    // Pausing twice is harmless.
    expect((await ingest.api('POST', `/api/v1/rollouts/${created.id}/pause`)).status).toBe(200);

    const viewer = (await ingest.api('POST', '/api/v1/tokens', { name: 'v', roles: ['viewer'] }))
      .body.token as string;
    expect(
      (await ingest.api('GET', `/api/v1/rollouts/${created.id}`, undefined, { token: viewer }))
        .status,
    ).toBe(200);
    expect(
      (
        await ingest.api('POST', `/api/v1/rollouts/${created.id}/resume`, undefined, {
          token: viewer,
        })
      ).status,
    ).toBe(403);

    await ingest.api('POST', `/api/v1/rollouts/${created.id}/resume`);
    r = await until(created.id, (x) => x.status === 'completed', 'the resumed rollout to finish');
    expect(r.totals.succeeded).toBe(4);

    // Cancelled before its next wave: that wave is never offered.
    const more = await fleet('h', 4);
    const v130 = await upload({ version: '1.5.0' });
    const second = await create({
      firmwareId: v130.id,
      target: { tags: { fleet: 'h' } },
      waves: [50, 100],
    });
    await until(second.id, (x) => x.waves[0]!.phase === 'soaking', 'wave 1 to soak');
    const cancelled = await ingest.api('POST', `/api/v1/rollouts/${second.id}/cancel`);
    expect(cancelled.body).toMatchObject({
      status: 'cancelled',
      reason: expect.stringContaining('cancelled by'),
    });
    ingest.clock.advance(SOAK_S * 1000);
    await new Promise((res) => setTimeout(res, 300));
    expect(more.filter((d) => d.offers.length > 0)).toHaveLength(2);
    expect((await get(second.id)).totals.pending).toBe(2);
    const list = await ingest.api('GET', '/api/v1/rollouts?status=cancelled');
    expect((list.body.items as { id: string }[]).map((x) => x.id)).toContain(second.id);
  });

  it('refuses rollouts that would race another, name unknown devices, or use an untrusted key', async () => {
    const [d1] = await fleet('i', 1, () => ({ hold: true }));
    const first = await create({
      firmwareId: v110.id,
      target: { devices: [d1!.id] },
      waves: [100],
    });
    const race = await ingest.api('POST', '/api/v1/rollouts', {
      firmwareId: v110.id,
      target: { devices: [d1!.id] },
      waves: [100],
    });
    expect([race.status, race.body.code]).toEqual([409, 'rollout_overlaps']);
    await ingest.api('POST', `/api/v1/rollouts/${first.id}/cancel`);

    const unknown = await ingest.api('POST', '/api/v1/rollouts', {
      firmwareId: v110.id,
      target: { devices: ['nobody-here'] },
      waves: [100],
    });
    expect([unknown.status, unknown.body.code]).toEqual([400, 'target_unknown']);
    const badWaves = await ingest.api('POST', '/api/v1/rollouts', {
      firmwareId: v110.id,
      target: { devices: [d1!.id] },
      waves: [50, 20],
    });
    expect(badWaves.status).toBe(400);

    // Firmware signed by a key that is later revoked cannot be rolled out any more.
    const other = await generateKeyPair('Ed25519');
    await ingest.api('POST', '/api/v1/release-keys', { publicKey: other.publicJwk });
    const signedByOther = await makeFirmware(other, { version: '7.0.0' });
    const stored = await uploadFirmware(ingest.url, signedByOther);
    expect(stored.status).toBe(201);
    await ingest.api('DELETE', `/api/v1/release-keys/${other.kid}`);
    const untrusted = await ingest.api('POST', '/api/v1/rollouts', {
      firmwareId: stored.body.id,
      target: { devices: [d1!.id] },
      waves: [100],
    });
    expect([untrusted.status, untrusted.body.code]).toEqual([409, 'firmware_untrusted']);
  });

  it('targets the children of a gateway, which the gateway updates on their behalf', async () => {
    const { pair, reply } = await enrollWithReply(ingest, 'gw-ota', { kind: 'gateway' });
    const children = ['child-ota-1', 'child-ota-2'];
    const imported = await ingest.api(
      'POST',
      '/api/v1/devices/import',
      children.map((id) => ({ id, gateway: 'gw-ota' })),
    );
    expect(imported.body).toEqual({ imported: 2 });
    const gateway = new SimDevice(ingest, 'gw-ota', pair, reply, {
      children: children.map((id) => ({ id, hardware: 'sim-a', versions: { main: '1.0.0' } })),
    });
    sims.push(gateway);
    await gateway.connect();
    const created = await create({
      firmwareId: v110.id,
      target: { gateways: ['gw-ota'] },
      waves: [100],
    });
    expect(created.devices.map((d) => d.deviceId).sort()).toEqual(children);
    const r = await until(created.id, (x) => x.status === 'completed', 'the children to update');
    expect(r.totals.succeeded).toBe(2);
    expect(gateway.unit('child-ota-1').versions.main).toBe('1.1.0');
    expect(gateway.downloads.map((q) => q.unit).sort()).toEqual(children);
  });
});
