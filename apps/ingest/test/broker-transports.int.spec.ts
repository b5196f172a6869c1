import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import type { KeyPair } from '@outpost/signing/keys';
import { freePort } from '@outpost/test-kit/ports';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  enrollDevice,
  type InProcessIngest,
  startInProcess,
  waitUntil,
} from './support/ingest-app.js';

// Real parts: the ingest app with MQTT over TLS (its self-signed development certificate)
// and MQTT over WebSocket on the HTTP port; mqtt.js as the client.

describe('MQTT over TLS and WebSocket', () => {
  let ingest: InProcessIngest;
  let pair: KeyPair;
  let tlsPort: number;

  beforeAll(async () => {
    tlsPort = await freePort();
    ingest = await startInProcess({ INGEST_MQTTS_PORT: String(tlsPort) });
    pair = await enrollDevice(ingest, 'tls-1');
  });
  afterAll(() => ingest?.close());

  const password = async () =>
    (
      await signDeviceJwt(pair.privateJwk, {
        deviceId: 'tls-1',
        now: () => ingest.clock.now() / 1000,
      })
    ).token;

  const count = async () => {
    const res = await ingest.api(
      'GET',
      '/api/v1/devices/tls-1/telemetry?metric=via&from=-1d&to=now',
    );
    return ((res.body.points as unknown[]) ?? []).length;
  };

  it('made a development certificate in the data dir, key readable by the owner only', () => {
    const key = join(ingest.dataDir, 'tls', 'dev-key.pem');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(ingest.dataDir, 'tls', 'dev-cert.pem'), 'utf8')).toContain(
      'BEGIN CERTIFICATE',
    );
  });

  it('accepts a device over TLS that trusts the certificate, and refuses a bad token there too', async () => {
    const ca = readFileSync(join(ingest.dataDir, 'tls', 'dev-cert.pem'));
    const client = await mqtt.connectAsync(`mqtts://localhost:${tlsPort}`, {
      protocolVersion: 4,
      clientId: 'tls-1',
      username: 'tls-1',
      password: await password(),
      ca,
      reconnectPeriod: 0,
    });
    const t = Math.floor(ingest.clock.now() / 1000) - 10;
    await client.publishAsync(
      topics.telemetry('tls-1'),
      await signBatch(pair.privateJwk, {
        v: 1,
        boot: 'tlsboot01',
        seq: [1, 1],
        records: [{ bt: t, n: 'via', v: 1 }],
      }),
      { qos: 1 },
    );
    await client.endAsync();
    await expect(
      mqtt.connectAsync(`mqtts://localhost:${tlsPort}`, {
        protocolVersion: 4,
        clientId: 'tls-1',
        username: 'tls-1',
        password: 'bad',
        ca,
        reconnectPeriod: 0,
      }),
    ).rejects.toMatchObject({ code: 4 });
    await waitUntil(async () => (await count()) === 1, 'reading over TLS');
  });

  it('accepts a device over WebSocket at /mqtt on the HTTP port', async () => {
    const client = await mqtt.connectAsync(`${ingest.url.replace('http', 'ws')}/mqtt`, {
      protocolVersion: 4,
      clientId: 'tls-1',
      username: 'tls-1',
      password: await password(),
      reconnectPeriod: 0,
    });
    const t = Math.floor(ingest.clock.now() / 1000) - 5;
    await client.publishAsync(
      topics.telemetry('tls-1'),
      await signBatch(pair.privateJwk, {
        v: 1,
        boot: 'wsboot001',
        seq: [1, 1],
        records: [{ bt: t, n: 'via', v: 2 }],
      }),
      { qos: 1 },
    );
    await client.endAsync();
    await waitUntil(async () => (await count()) === 2, 'reading over WebSocket');
  });
});
