import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { signEnrollmentProof, signEnrollmentToken } from '@outpost/signing/enrollment';
import { generateKeyPair } from '@outpost/signing/keys';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';

// Real parts: the whole Nest/Fastify app on a loopback port, SQLite registry on disk,
// real signatures. Mocked: nothing; time comes from an injected clock we can move.

const BOOTSTRAP = 'bootstrap-token-for-tests-0123456789';

class TestClock {
  ms = Date.now();
  now = () => this.ms;
  advance(ms: number) {
    this.ms += ms;
  }
}

interface Harness {
  app: NestFastifyApplication;
  url: string;
  dataDir: string;
  clock: TestClock;
}

async function start(env: Record<string, string> = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-http-'));
  const config = loadConfig({
    INGEST_DATA_DIR: dataDir,
    INGEST_HTTP_PORT: '0',
    INGEST_HOST: '127.0.0.1',
    INGEST_MQTT_PORT: '0',
    INGEST_MQTTS_PORT: '0',
    ...env,
  });
  const clock = new TestClock();
  const app = await createApp({ config, logger: pino({ level: 'silent' }), clock });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address() as { port: number };
  return { app, url: `http://127.0.0.1:${address.port}`, dataDir, clock };
}

async function stop(h: Harness | undefined) {
  if (!h) return;
  await h.app.close();
  rmSync(h.dataDir, { recursive: true, force: true });
}

type Json = Record<string, unknown> & { items?: Record<string, unknown>[] };

function client(h: Harness, token?: string) {
  return async (
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<{ status: number; body: Json; headers: Headers }> => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = contentType;
    const res = await fetch(`${h.url}${path}`, {
      method,
      headers,
      ...(body !== undefined
        ? { body: typeof body === 'string' ? body : JSON.stringify(body) }
        : {}),
    });
    const text = await res.text();
    let parsed: Json = {};
    try {
      parsed = text ? (JSON.parse(text) as Json) : {};
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

async function enrollWith(h: Harness, token: string, jti: string, deviceId: string) {
  const pair = await generateKeyPair('Ed25519');
  const { token: proof } = await signEnrollmentProof(pair.privateJwk, {
    jti,
    deviceId,
    now: () => h.clock.now() / 1000,
  });
  return { pair, body: { token, publicKey: pair.publicJwk, proof } };
}

describe('ingest HTTP API (real app, SQLite)', () => {
  let h: Harness;
  let admin: ReturnType<typeof client>;

  beforeAll(async () => {
    // Walking every protected route without a token is many failed authentications from
    // one source; the limiter has its own test below.
    h = await start({ INGEST_BOOTSTRAP_TOKEN: BOOTSTRAP, INGEST_AUTH_FAILURES_PER_MINUTE: '1000' });
    admin = client(h, BOOTSTRAP);
  });
  afterAll(() => stop(h));

  it('serves health, readiness, metrics and the OpenAPI document', async () => {
    const anon = client(h);
    expect((await anon('GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await anon('GET', '/readyz')).status).toBe(200);
    const metrics = await fetch(`${h.url}/metrics`).then((r) => r.text());
    expect(metrics).toContain('outpost_ingest_process_cpu_seconds_total');
    const doc = (await anon('GET', '/api/docs/openapi.json')).body as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/enrollments',
        '/api/v1/enroll',
        '/api/v1/devices',
        '/api/v1/devices/{id}',
        '/api/v1/devices/{id}/revoke',
        '/api/v1/devices/import',
        '/api/v1/tokens',
        '/api/v1/tokens/{id}',
      ]),
    );
    const page = await fetch(`${h.url}/api/docs`).then((r) => r.text());
    expect(page).toContain('swagger-ui-bundle.js');
    const asset = await fetch(`${h.url}/api/docs/assets/swagger-ui-bundle.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('javascript');
    expect((await anon('GET', '/api/docs/assets/..%2Fpackage.json')).status).toBe(404);
  });

  it('refuses every protected route without a token (401) and with too small a role (403)', async () => {
    const doc = (await client(h)('GET', '/api/docs/openapi.json')).body as {
      paths: Record<
        string,
        Record<string, { security: Record<string, unknown>[]; 'x-roles'?: string[] }>
      >;
    };
    const viewer = (await admin('POST', '/api/v1/tokens', { name: 'v', roles: ['viewer'] })).body
      .token as string;
    let protectedRoutes = 0;
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        if (op.security.length === 0) continue;
        protectedRoutes++;
        const concrete = path.replace('{id}', 'some-device');
        const anon = await client(h)(method.toUpperCase(), concrete);
        expect(anon.status, `${method} ${path}`).toBe(401);
        expect(anon.headers.get('content-type')).toContain('application/problem+json');
        // Device routes take a device JWT: an API token is no credential there at all.
        if (op.security.some((s) => 'deviceJwt' in s)) {
          const res = await client(h, viewer)(
            method.toUpperCase(),
            concrete,
            method === 'get' ? undefined : {},
          );
          expect(res.status, `${method} ${path} with an API token`).toBe(401);
          continue;
        }
        if (!op['x-roles']?.includes('viewer')) {
          const res = await client(h, viewer)(
            method.toUpperCase(),
            concrete,
            method === 'get' ? undefined : {},
          );
          expect(res.status, `${method} ${path} as viewer`).toBe(403);
          expect(res.body.code).toBe('role_required');
        }
      }
    }
    expect(protectedRoutes).toBeGreaterThanOrEqual(9);
  });

  it('writes the first admin token to <data dir>/admin-token with mode 0600 when none is given', async () => {
    const h2 = await start();
    try {
      const path = join(h2.dataDir, 'admin-token');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const token = readFileSync(path, 'utf8').trim();
      expect((await client(h2, token)('GET', '/api/v1/tokens')).status).toBe(200);
      expect((await client(h2, BOOTSTRAP)('GET', '/api/v1/tokens')).status).toBe(401);
    } finally {
      await stop(h2);
    }
  });

  it('issues, lists and revokes API tokens; a revoked token stops working', async () => {
    const issued = await admin('POST', '/api/v1/tokens', { name: 'ops', roles: ['operator'] });
    expect(issued.status).toBe(201);
    const token = issued.body.token as string;
    expect((await client(h, token)('GET', '/api/v1/devices')).status).toBe(200);
    const list = await admin('GET', '/api/v1/tokens');
    expect(JSON.stringify(list.body)).not.toContain(token);
    expect(JSON.stringify(list.body)).not.toContain('hash');
    expect((await admin('DELETE', `/api/v1/tokens/${issued.body.id}`)).status).toBe(200);
    const after = await client(h, token)('GET', '/api/v1/devices');
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('token_revoked');
    expect((await admin('POST', '/api/v1/tokens', { name: 'x', roles: ['root'] })).body.code).toBe(
      'invalid_input',
    );
  });

  it('enrolls a device with proof of possession; a second use of the token is 409', async () => {
    const created = await admin('POST', '/api/v1/enrollments', {
      deviceId: 'boiler-7',
      tags: { site: 'north' },
    });
    expect(created.status).toBe(201);
    const { token, jti } = created.body as { token: string; jti: string };
    const pending = await admin('GET', '/api/v1/devices/boiler-7');
    expect(pending.body).toMatchObject({ status: 'pending', tags: { site: 'north' } });

    const { pair, body } = await enrollWith(h, token, jti, 'boiler-7');
    const enrolled = await client(h)('POST', '/api/v1/enroll', body);
    expect(enrolled.status).toBe(201);
    expect(enrolled.body).toMatchObject({
      device: { id: 'boiler-7', status: 'active', keys: [{ kid: pair.kid }] },
      kid: pair.kid,
      audience: 'outpost',
      endpoints: { mqtt: { port: expect.any(Number) } },
    });
    expect((enrolled.body.jwks as { keys: unknown[] }).keys).toHaveLength(1);

    const again = await client(h)(
      'POST',
      '/api/v1/enroll',
      (await enrollWith(h, token, jti, 'boiler-7')).body,
    );
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('enrollment_used');
  });

  it('lets exactly one of 50 concurrent enrollments with one token succeed', async () => {
    const created = await admin('POST', '/api/v1/enrollments', { deviceId: 'race-1' });
    const { token, jti } = created.body as { token: string; jti: string };
    const bodies = await Promise.all(
      Array.from({ length: 50 }, () => enrollWith(h, token, jti, 'race-1')),
    );
    const results = await Promise.all(
      bodies.map((b) => client(h)('POST', '/api/v1/enroll', b.body)),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(49);
    const device = await admin('GET', '/api/v1/devices/race-1');
    expect(device.body.keys).toHaveLength(1);
  });

  it('refuses forged, expired, mismatched and unsupported enrollments with clear 4xx', async () => {
    const anon = client(h);
    const created = await admin('POST', '/api/v1/enrollments', {
      deviceId: 'victim-1',
      ttlSeconds: 600,
    });
    const { token, jti } = created.body as { token: string; jti: string };

    // Forged: a token of the right shape signed by someone else's key.
    const attacker = await generateKeyPair('Ed25519');
    const forged = await signEnrollmentToken(attacker.privateJwk, {
      issuer: 'outpost-ingest',
      deviceId: 'victim-1',
      jti,
    });
    const forgedRes = await anon(
      'POST',
      '/api/v1/enroll',
      (await enrollWith(h, forged.token, jti, 'victim-1')).body,
    );
    expect(forgedRes.status).toBe(401);
    expect(['kid_unknown', 'kid_mismatch']).toContain(forgedRes.body.code);

    // Proof signed by a different key than the one presented.
    const { body } = await enrollWith(h, token, jti, 'victim-1');
    const other = await generateKeyPair('Ed25519');
    const mismatched = await anon('POST', '/api/v1/enroll', {
      ...body,
      publicKey: other.publicJwk,
    });
    expect(mismatched.status).toBe(401);

    // Proof for another device.
    const wrongSub = await anon(
      'POST',
      '/api/v1/enroll',
      (await enrollWith(h, token, jti, 'other-1')).body,
    );
    expect(wrongSub.status).toBe(401);
    expect(wrongSub.body.code).toBe('subject_mismatch');

    // Unsupported key types are refused at the schema.
    const rsa = await anon('POST', '/api/v1/enroll', {
      ...body,
      publicKey: { kty: 'RSA', n: 'AQAB', e: 'AQAB' },
    });
    expect(rsa.status).toBe(400);
    const withPrivate = await anon('POST', '/api/v1/enroll', {
      ...body,
      publicKey: { ...(body.publicKey as object), d: 'A'.repeat(43) },
    });
    expect(withPrivate.status).toBe(400);

    // None of that used the token up.
    expect((await anon('POST', '/api/v1/enroll', body)).status).toBe(201);

    // Expired: move the clock past the token's lifetime.
    const later = await admin('POST', '/api/v1/enrollments', {
      deviceId: 'late-1',
      ttlSeconds: 60,
    });
    h.clock.advance(10 * 60_000);
    const expired = await anon(
      'POST',
      '/api/v1/enroll',
      (await enrollWith(h, later.body.token as string, later.body.jti as string, 'late-1')).body,
    );
    expect(expired.status).toBe(401);
    expect(expired.body.code).toBe('token_expired');
  });

  it('imports 10,000 devices only when every row is valid, naming the bad row', async () => {
    const before = (await admin('GET', '/api/v1/devices?limit=500')).body.items!.length;
    const rows = ['id,kind,gateway,tags'];
    for (let i = 0; i < 10_000; i++) rows.push(`imp-${i},device,,batch=one;n=${i % 10}`);
    rows[7_778] = 'imp-7777,device,,batch=one;=broken';
    const bad = await admin('POST', '/api/v1/devices/import', rows.join('\n'), 'text/csv');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('import_invalid');
    expect(bad.body.errors).toEqual([
      { line: 7_779, id: 'imp-7777', message: expect.stringContaining('not key=value') },
    ]);
    expect((await admin('GET', '/api/v1/devices?tag=batch=one')).body.items).toHaveLength(0);
    expect((await admin('GET', '/api/v1/devices?limit=500')).body.items!.length).toBe(before);

    rows[7_778] = 'imp-7777,device,,batch=one;n=7';
    const good = await admin('POST', '/api/v1/devices/import', rows.join('\n'), 'text/csv');
    expect(good.status).toBe(200);
    expect(good.body).toEqual({ imported: 10_000 });
    const filtered = await admin('GET', '/api/v1/devices?tag=batch=one&tag=n=7&limit=500');
    expect(filtered.body.items).toHaveLength(500);
    const rest = await admin(
      'GET',
      `/api/v1/devices?tag=batch=one&tag=n=7&limit=500&after=${filtered.body.next}`,
    );
    expect(rest.body.items).toHaveLength(500);
    expect(rest.body.next).toBeNull();
    const again = await admin('POST', '/api/v1/devices/import', 'id\nimp-5\nnew-1', 'text/csv');
    expect(again.body.errors).toEqual([{ line: 2, id: 'imp-5', message: 'device already exists' }]);
    expect((await admin('GET', '/api/v1/devices/new-1')).status).toBe(404);
  });

  it('imports JSON with gateway assignment and refuses unknown gateways', async () => {
    await admin('POST', '/api/v1/enrollments', { deviceId: 'gw-j', kind: 'gateway' });
    const ok = await admin('POST', '/api/v1/devices/import', [
      { id: 'child-j1', gateway: 'gw-j', tags: { zone: 'a' } },
    ]);
    expect(ok.body).toEqual({ imported: 1 });
    expect(
      (await admin('GET', '/api/v1/devices?gateway=gw-j')).body.items!.map((d) => d.id),
    ).toEqual(['child-j1']);
    const bad = await admin('POST', '/api/v1/devices/import', [
      { id: 'child-j2', gateway: 'nope' },
    ]);
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.errors)).toContain('gateway nope does not exist');
  });

  it('lists with pagination and filters, patches and revokes', async () => {
    const p1 = await admin('GET', '/api/v1/devices?limit=2');
    expect(p1.body.items).toHaveLength(2);
    const p2 = await admin('GET', `/api/v1/devices?limit=2&after=${p1.body.next}`);
    expect((p2.body.items![0]!.id as string) > (p1.body.items![1]!.id as string)).toBe(true);

    const patched = await admin('PATCH', '/api/v1/devices/boiler-7', {
      name: 'Boiler seven',
      tags: { site: 'south' },
      desiredConfig: { batch: { maxRecords: 100 } },
    });
    expect(patched.body).toMatchObject({
      name: 'Boiler seven',
      tags: { site: 'south' },
      desiredConfigVersion: 1,
    });
    const revoked = await admin('POST', '/api/v1/devices/boiler-7/revoke');
    expect(revoked.body).toMatchObject({ status: 'revoked', connectivity: { state: 'revoked' } });
    expect(
      (await admin('GET', '/api/v1/devices?status=revoked')).body.items!.map((d) => d.id),
    ).toContain('boiler-7');
    const again = await admin('POST', '/api/v1/enrollments', { deviceId: 'boiler-7' });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('device_revoked');
  });

  it('refuses unknown fields, hostile ids and bad queries with problem details', async () => {
    const cases: [string, string, unknown, number, string][] = [
      ['POST', '/api/v1/enrollments', { deviceId: 'ok-1', admin: true }, 400, 'invalid_input'],
      ['POST', '/api/v1/enrollments', { deviceId: "x' OR '1'='1" }, 400, 'invalid_input'],
      ['POST', '/api/v1/enrollments', { deviceId: 'a'.repeat(65) }, 400, 'invalid_input'],
      ['GET', "/api/v1/devices/x'%20OR%201=1", undefined, 400, 'invalid_input'],
      ['GET', '/api/v1/devices?limit=100000', undefined, 400, 'invalid_input'],
      ['GET', "/api/v1/devices?tag=k'=v", undefined, 400, 'invalid_input'],
      ['GET', '/api/v1/devices?sort=evil', undefined, 400, 'invalid_input'],
      ['PATCH', '/api/v1/devices/child-j1', {}, 400, 'invalid_input'],
      ['GET', '/api/v1/devices/does-not-exist', undefined, 404, 'device_not_found'],
      ['POST', '/api/v1/enrollments', '{not json', 400, 'bad_request'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const res = await admin(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(status);
      expect(res.body.code, `${method} ${path}`).toBe(code);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
    // The registry survived.
    expect((await admin('GET', '/api/v1/devices/child-j1')).status).toBe(200);
  });

  it('rate-limits failed authentication per source', async () => {
    const h3 = await start({
      INGEST_BOOTSTRAP_TOKEN: BOOTSTRAP,
      INGEST_AUTH_FAILURES_PER_MINUTE: '5',
    });
    try {
      const bad = client(h3, 'wrong-token');
      for (let i = 0; i < 5; i++) expect((await bad('GET', '/api/v1/devices')).status).toBe(401);
      const limited = await bad('GET', '/api/v1/devices');
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      // Even the right token waits until the window passes.
      expect((await client(h3, BOOTSTRAP)('GET', '/api/v1/devices')).status).toBe(429);
      h3.clock.advance(61_000);
      expect((await client(h3, BOOTSTRAP)('GET', '/api/v1/devices')).status).toBe(200);
    } finally {
      await stop(h3);
    }
  });
});
