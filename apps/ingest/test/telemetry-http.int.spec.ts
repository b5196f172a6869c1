import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  enrollDevice,
  type InProcessIngest,
  startInProcess,
  waitUntil,
} from './support/ingest-app.js';

// Real parts: the ingest app over HTTP, SQLite registry, outbox and telemetry store, real
// signatures. Nothing mocked.

let ingest: InProcessIngest;
let gw: KeyPair;
let plain: KeyPair;

const nowS = () => Math.floor(ingest.clock.now() / 1000);

async function bearer(
  pair: KeyPair,
  deviceId: string,
  extra: { audience?: string; lifetimeS?: number } = {},
) {
  const { token } = await signDeviceJwt(pair.privateJwk, { deviceId, now: nowS, ...extra });
  return token;
}

async function post(body: string | Buffer, contentType: string, token: string | null) {
  return ingest.api('POST', '/api/v1/telemetry', body, { token, contentType });
}

async function count(deviceId: string, metric: string) {
  const res = await ingest.api(
    'GET',
    `/api/v1/devices/${deviceId}/telemetry?metric=${metric}&from=-1d&to=now`,
  );
  return ((res.body.points as unknown[] | undefined) ?? []).length;
}

describe('HTTP telemetry ingest (POST /api/v1/telemetry)', () => {
  beforeAll(async () => {
    ingest = await startInProcess();
    gw = await enrollDevice(ingest, 'gw-h', { kind: 'gateway' });
    await ingest.api('POST', '/api/v1/devices/import', [{ id: 'child-h', gateway: 'gw-h' }]);
    plain = await enrollDevice(ingest, 'plain-h');
    await ingest.api('PATCH', '/api/v1/devices/plain-h', {
      policy: { payloadSigning: 'optional' },
    });
  });
  afterAll(() => ingest?.close());

  it('accepts a signed batch, answers once it is durable, and dedups a replay', async () => {
    const jws = await signBatch(gw.privateJwk, {
      v: 1,
      boot: 'httpboot1',
      seq: [1, 2],
      records: [
        { bt: nowS() - 10, n: 'child-h/temp', v: 20 },
        { n: 'child-h/temp', v: 21, t: 1 },
      ],
    });
    const token = await bearer(gw, 'gw-h');
    const first = await post(jws, 'application/jose', token);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      outcome: 'accepted',
      readings: 2,
      boot: 'httpboot1',
      seq: [1, 2],
    });
    const again = await post(jws, 'application/jose', token);
    expect(again.body.outcome).toBe('duplicate');
    await waitUntil(async () => (await count('child-h', 'temp')) === 2, 'stored once');
  });

  it('accepts bare SenML only from a device whose policy allows it', async () => {
    const pack = JSON.stringify([{ bt: nowS() - 5, n: 'humidity', u: '%RH', v: 40 }]);
    const ok = await post(pack, 'application/senml+json', await bearer(plain, 'plain-h'));
    expect(ok.status).toBe(200);
    const refused = await post(pack, 'application/senml+json', await bearer(gw, 'gw-h'));
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'telemetry_policy', reason: 'policy' });
  });

  it.each([
    [
      'no token',
      async () => [
        await signBatch(gw.privateJwk, {
          v: 1,
          boot: 'attack01',
          seq: [1, 1],
          records: [{ n: 'x', v: 1 }],
        }),
        null,
      ],
      401,
      'token_missing',
    ],
    [
      'an API token instead of a device JWT',
      async () => [
        await signBatch(gw.privateJwk, {
          v: 1,
          boot: 'attack02',
          seq: [1, 1],
          records: [{ n: 'x', v: 1 }],
        }),
        'bootstrap-token-for-tests-0123456789',
      ],
      401,
      undefined,
    ],
    [
      'a device JWT with the wrong audience',
      async () => [
        await signBatch(gw.privateJwk, {
          v: 1,
          boot: 'attack03',
          seq: [1, 1],
          records: [{ n: 'x', v: 1 }],
        }),
        await bearer(gw, 'gw-h', { audience: 'elsewhere' }),
      ],
      401,
      'aud_mismatch',
    ],
    [
      'a batch signed by another key',
      async () => [
        await signBatch((await generateKeyPair()).privateJwk, {
          v: 1,
          boot: 'attack04',
          seq: [1, 1],
          records: [{ n: 'x', v: 1 }],
        }),
        await bearer(gw, 'gw-h'),
      ],
      401,
      'telemetry_bad_signature',
    ],
    [
      'a child of another gateway',
      async () => [
        await signBatch(gw.privateJwk, {
          v: 1,
          boot: 'attack05',
          seq: [1, 1],
          records: [{ n: 'plain-h/x', v: 1 }],
        }),
        await bearer(gw, 'gw-h'),
      ],
      400,
      'telemetry_not_child',
    ],
    [
      'a non-finite value smuggled as a string',
      async () => [
        await signBatch(gw.privateJwk, {
          v: 1,
          boot: 'attack06',
          seq: [1, 1],
          records: [{ n: 'x', v: 'Infinity' }],
        }),
        await bearer(gw, 'gw-h'),
      ],
      400,
      'telemetry_schema',
    ],
    // Unverifiable before it is readable: refused as an untrusted batch.
    [
      'malformed JSON inside the JWS',
      async () => [
        `${Buffer.from('{"alg":"EdDSA"}').toString('base64url')}.${Buffer.from('{nope').toString('base64url')}.AAAA`,
        await bearer(gw, 'gw-h'),
      ],
      401,
      'telemetry_bad_signature',
    ],
    [
      'an oversized body',
      async () => ['x'.repeat(300 * 1024), await bearer(gw, 'gw-h')],
      413,
      'body_too_large',
    ],
  ] as const)('refuses %s', async (_name, make, status, code) => {
    const [body, token] = (await make()) as [string, string | null];
    const res = await post(body, 'application/jose', token);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    if (code) expect(res.body.code).toBe(code);
    expect(await count('gw-h', 'x')).toBe(0);
  });

  it('reports NaN in a bare SenML pack as invalid JSON, storing nothing', async () => {
    const res = await post(
      '[{"n":"humidity","v":NaN}]',
      'application/senml+json',
      await bearer(plain, 'plain-h'),
    );
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('telemetry_schema');
  });

  it('serves raw and aggregated ranges and the latest values', async () => {
    const t = nowS() - 100;
    const jws = await signBatch(gw.privateJwk, {
      v: 1,
      boot: 'queryboot',
      seq: [1, 6],
      records: [0, 10, 20, 30, 40, 50].map((dt, i) => ({
        ...(i === 0 ? { bt: t } : {}),
        n: 'child-h/level',
        u: 'm',
        v: i,
        t: dt,
      })),
    });
    await post(jws, 'application/jose', await bearer(gw, 'gw-h'));
    await waitUntil(async () => (await count('child-h', 'level')) === 6, 'level stored');
    const agg = await ingest.api(
      'GET',
      `/api/v1/devices/child-h/telemetry?metric=level&from=${(t - (t % 30)) * 1000}&to=now&every=30s&fn=max`,
    );
    expect(agg.body).toMatchObject({ every: '30s', fn: 'max' });
    expect(
      (agg.body.points as { value: number }[])
        .map((p) => p.value)
        .reduce((a, b) => Math.max(a, b), 0),
    ).toBe(5);
    const latest = await ingest.api('GET', '/api/v1/devices/child-h/latest');
    expect(latest.body.metrics).toEqual(
      expect.arrayContaining([expect.objectContaining({ metric: 'level', value: 5, unit: 'm' })]),
    );
    const bad = await ingest.api(
      'GET',
      '/api/v1/devices/child-h/telemetry?metric=level&from=now&to=-1h',
    );
    expect(bad.status).toBe(400);
    const unknown = await ingest.api('GET', '/api/v1/devices/nobody/latest');
    expect(unknown.status).toBe(404);
  });

  it('shows the service backlog and the quarantine to viewers', async () => {
    const outbox = await ingest.api('GET', '/api/v1/telemetry/outbox');
    expect(outbox.body).toMatchObject({
      pendingBatches: expect.any(Number),
      quarantinedBatches: 0,
    });
    const q = await ingest.api('GET', '/api/v1/telemetry/quarantine');
    expect(q.body).toEqual([]);
    const missing = await ingest.api('POST', '/api/v1/telemetry/quarantine/999/requeue');
    expect(missing.status).toBe(404);
  });

  it('streams accepted readings and status over SSE, filtered by device', async () => {
    const controller = new AbortController();
    const res = await fetch(`${ingest.url}/api/v1/stream?device=child-h&types=readings`, {
      headers: { authorization: 'Bearer bootstrap-token-for-tests-0123456789' },
      signal: controller.signal,
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const jws = await signBatch(gw.privateJwk, {
      v: 1,
      boot: 'streamboot',
      seq: [1, 2],
      // The gateway's own reading is filtered out of this device-filtered stream.
      records: [
        { bt: nowS(), n: 'child-h/temp', v: 30 },
        { n: 'cpu', v: 1 },
      ],
    });
    await post(jws, 'application/jose', await bearer(gw, 'gw-h'));
    let text = '';
    while (!text.includes('event: readings')) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    const data = JSON.parse(text.split('event: readings\ndata: ')[1]!.split('\n')[0]!) as {
      readings: { device: string; value: number }[];
    };
    expect(data.readings).toEqual([expect.objectContaining({ device: 'child-h', value: 30 })]);
  });
});
