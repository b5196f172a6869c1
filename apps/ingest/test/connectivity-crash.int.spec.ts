import type { KeyPair } from '@outpost/signing/keys';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { useServices } from '@outpost/test-kit/vitest';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { connectDevice } from './support/cluster-devices.js';
import { type ApiClient, apiClient, enrollDevice, waitUntil } from './support/ingest-app.js';

// Real parts: the built ingest as a separate process on SQLite (as deployed alone), mqtt.js
// devices over TCP with real device JWTs, kill -9. Nothing mocked.

const systemClock = { now: () => Date.now() };

interface Connectivity {
  state: string;
  online: boolean;
  lastSeen: string | null;
  disconnectReason: string | null;
}

/** A device's MQTT session on the ingest, with a fresh device JWT. */
function connectAs(ingest: IngestHandle, deviceId: string, pair: KeyPair): Promise<MqttClient> {
  return connectDevice(ingest.mqttUrl, { id: deviceId, pair });
}

async function connectivity(api: ApiClient, deviceId: string): Promise<Connectivity> {
  const res = await api('GET', `/api/v1/devices/${deviceId}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.connectivity as Connectivity;
}

async function listed(api: ApiClient, status: 'online' | 'offline'): Promise<string[]> {
  const res = await api('GET', `/api/v1/devices?status=${status}&limit=100`);
  return (res.body.items as { id: string }[]).map((d) => d.id);
}

describe('connectivity after the ingest is killed (separate process)', () => {
  const services = useServices();

  it('records the devices it had online offline (server_restart) when it starts again', async () => {
    const ingest = await services.add(
      startIngest({ env: { INGEST_CONNECTIVITY_FLUSH_MS: '100' } }),
    );
    const api = apiClient(ingest.url, ingest.adminToken);
    const pairs = {
      gone: await enrollDevice({ api, clock: systemClock }, 'gone-1'),
      back: await enrollDevice({ api, clock: systemClock }, 'back-1'),
    };
    const clients = [
      await connectAs(ingest, 'gone-1', pairs.gone),
      await connectAs(ingest, 'back-1', pairs.back),
    ];
    await waitUntil(
      async () => (await listed(api, 'online')).length === 2,
      'both devices online in the registry',
      20_000,
    );
    const seen = (await connectivity(api, 'gone-1')).lastSeen;
    expect(seen).not.toBeNull();

    // The process dies without a word; so does one device, for good.
    await ingest.kill9();
    for (const c of clients) c.end(true);
    await ingest.restart();

    // Ready means recorded: before any device is back, nobody is online.
    for (const id of ['gone-1', 'back-1']) {
      expect(await connectivity(api, id), id).toMatchObject({
        state: 'offline',
        online: false,
        disconnectReason: 'server_restart',
      });
    }
    expect((await connectivity(api, 'gone-1')).lastSeen).toBe(seen);
    expect(await listed(api, 'online')).toEqual([]);
    expect(await listed(api, 'offline')).toEqual(['back-1', 'gone-1']);

    // The device that comes back is online again; the other stays offline.
    const again = await connectAs(ingest, 'back-1', pairs.back);
    await waitUntil(
      async () => (await connectivity(api, 'back-1')).online,
      'back-1 online again',
      20_000,
    );
    expect(await connectivity(api, 'back-1')).toMatchObject({
      state: 'online',
      disconnectReason: null,
    });
    expect(await listed(api, 'online')).toEqual(['back-1']);
    expect(await connectivity(api, 'gone-1')).toMatchObject({
      online: false,
      disconnectReason: 'server_restart',
    });
    await again.endAsync();
  }, 120_000);
});
