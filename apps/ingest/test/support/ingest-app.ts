import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { freePort } from '@outpost/test-kit/ports';
import { pino } from 'pino';
import { createApp } from '../../src/app.js';
import { Broker } from '../../src/broker/broker.js';
import { loadConfig } from '../../src/config.js';

/**
 * The whole ingest app in this process on free loopback ports, with a clock tests can
 * move. Real parts: Nest/Fastify, aedes on TCP, SQLite stores, signatures.
 */
export const ADMIN = 'bootstrap-token-for-tests-0123456789';

export class TestClock {
  ms = Date.now();
  now = () => this.ms;
  advance(ms: number) {
    this.ms += ms;
  }
}

export interface InProcessIngest {
  app: NestFastifyApplication;
  url: string;
  mqttPort: number;
  dataDir: string;
  clock: TestClock;
  broker: Broker;
  api: ApiClient;
  close(): Promise<void>;
}

export type ApiResponse = { status: number; body: Record<string, unknown>; headers: Headers };
export type ApiClient = (
  method: string,
  path: string,
  body?: unknown,
  init?: { token?: string | null; contentType?: string },
) => Promise<ApiResponse>;

export async function startInProcess(
  env: Record<string, string> = {},
  options: { dataDir?: string; clock?: TestClock } = {},
): Promise<InProcessIngest> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'outpost-ingest-'));
  const mqttPort = await freePort();
  const config = loadConfig({
    INGEST_DATA_DIR: dataDir,
    INGEST_HTTP_PORT: '0',
    INGEST_HOST: '127.0.0.1',
    INGEST_MQTT_PORT: String(mqttPort),
    INGEST_MQTTS_PORT: '0',
    INGEST_BOOTSTRAP_TOKEN: ADMIN,
    INGEST_CONNECTIVITY_FLUSH_MS: '100',
    ...env,
  });
  const clock = options.clock ?? new TestClock();
  const app = await createApp({
    config,
    logger: pino({ level: process.env.OUTPOST_TEST_LOG ?? 'silent' }),
    clock,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address() as { port: number };
  const url = `http://127.0.0.1:${address.port}`;
  const api = apiClient(url, ADMIN);
  return {
    app,
    url,
    mqttPort,
    dataDir,
    clock,
    broker: app.get(Broker),
    api,
    close: async () => {
      await app.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A JSON client for the API at `url`, authenticated with `adminToken` unless told otherwise. */
export function apiClient(url: string, adminToken: string): ApiClient {
  return async (method, path, body, init = {}) => {
    const headers: Record<string, string> = {};
    const token = init.token === undefined ? adminToken : init.token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = init.contentType ?? 'application/json';
    const res = await fetch(`${url}${path}`, {
      method,
      headers,
      ...(body !== undefined
        ? { body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) }
        : {}),
    });
    const text = await res.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

/** Enrolls a device through the real API with a fresh key pair. */
export async function enrollDevice(
  ingest: { api: ApiClient; clock: { now(): number } },
  deviceId: string,
  extra: EnrollExtra = {},
): Promise<KeyPair> {
  return (await enrollWithReply(ingest, deviceId, extra)).pair;
}

type EnrollExtra = {
  kind?: 'device' | 'gateway';
  gateway?: string;
  tags?: Record<string, string>;
  alg?: 'EdDSA' | 'ES256';
};

/** Like `enrollDevice`, also returning the enrollment reply (JWKS, release keys, endpoints). */
export async function enrollWithReply(
  ingest: { api: ApiClient; clock: { now(): number } },
  deviceId: string,
  extra: EnrollExtra = {},
): Promise<{ pair: KeyPair; reply: Record<string, unknown> }> {
  const { alg, ...rest } = extra;
  const created = await ingest.api('POST', '/api/v1/enrollments', { deviceId, ...rest });
  if (created.status !== 201) throw new Error(`enrollment: ${JSON.stringify(created.body)}`);
  const pair = await generateKeyPair(alg ?? 'EdDSA');
  const { token: proof } = await signEnrollmentProof(pair.privateJwk, {
    jti: created.body.jti as string,
    deviceId,
    now: () => ingest.clock.now() / 1000,
  });
  const enrolled = await ingest.api(
    'POST',
    '/api/v1/enroll',
    { token: created.body.token, publicKey: pair.publicJwk, proof },
    { token: null },
  );
  if (enrolled.status !== 201) throw new Error(`enroll: ${JSON.stringify(enrolled.body)}`);
  return { pair, reply: enrolled.body };
}

export async function waitUntil<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
