import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import type { KeyPair } from '@outpost/signing/keys';
import { freePort } from '@outpost/test-kit/ports';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertEngine } from '../src/alerts/alert-engine.js';
import type { AlertMessage } from '../src/alerts/notification.js';
import { verifyWebhook } from '../src/alerts/notifiers/webhook-signature.js';
import { LiveEvents } from '../src/stream/live-events.js';
import {
  enrollDevice,
  type InProcessIngest,
  startInProcess,
  TestClock,
  waitUntil,
} from './support/ingest-app.js';

// Real parts: the whole ingest app in process (Nest/Fastify, aedes on TCP, SQLite registry,
// telemetry and alert stores), mqtt.js clients publishing signed batches over real sockets,
// node:http webhook receivers on 127.0.0.1, the SSE stream over HTTP. The clock is a
// TestClock the tests move; nothing is mocked.

const ENV = {
  INGEST_ALERT_TICK_MS: '50',
  INGEST_ALERT_RULES_REFRESH_MS: '200',
  INGEST_ALERT_WEBHOOK_BACKOFF_MS: '1000',
  INGEST_ALERT_WEBHOOK_MAX_BACKOFF_MS: '4000',
  INGEST_ALERT_WEBHOOK_MAX_ATTEMPTS: '3',
  INGEST_ALERT_WEBHOOK_TIMEOUT_MS: '3000',
};

interface Hit {
  message: AlertMessage;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A webhook receiver on 127.0.0.1 that answers as told: 204, 500, or never. */
async function startReceiver(port = 0) {
  const hits: Hit[] = [];
  let mode: 'ok' | 'fail' | 'hang' = 'ok';
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    hits.push({ message: JSON.parse(body) as AlertMessage, headers: req.headers, body });
    if (mode === 'hang') return;
    res.writeHead(mode === 'ok' ? 204 : 500).end();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}/hooks/outpost`,
    port: bound,
    hits,
    set mode(m: 'ok' | 'fail' | 'hang') {
      mode = m;
    },
    /** Hits for one device, as `type alertId` lines. */
    of: (device: string) =>
      hits.filter((h) => h.message.alert.device === device).map((h) => h.message.type),
    signedBy: (secret: string, hit: Hit, nowS: number) =>
      verifyWebhook(
        secret,
        {
          signature: hit.headers['x-outpost-signature'] as string | undefined,
          timestamp: hit.headers['x-outpost-timestamp'] as string | undefined,
        },
        hit.body,
        nowS,
      ),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

interface Device {
  id: string;
  pair: KeyPair;
}

let boots = 0;

async function connect(ingest: InProcessIngest, device: Device): Promise<MqttClient> {
  const { token } = await signDeviceJwt(device.pair.privateJwk, {
    deviceId: device.id,
    now: () => ingest.clock.now() / 1000,
  });
  return mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.mqttPort}`, {
    protocolVersion: 4,
    clientId: device.id,
    username: device.id,
    password: token,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
}

/** A signed batch of `values` at `atS` + 10 ms steps, optionally backfilled. */
async function batch(
  device: Device,
  metric: string,
  values: readonly number[],
  atS: number,
  extra: { bf?: boolean } = {},
): Promise<string> {
  const records = values.map((v, i) => ({
    ...(i === 0 ? { bt: atS } : { t: i / 100 }),
    n: metric,
    v,
    ...(extra.bf ? { bf: true } : {}),
  }));
  return signBatch(device.pair.privateJwk, {
    v: 1,
    boot: `boot${String(++boots).padStart(6, '0')}`,
    seq: [1, records.length],
    records,
  });
}

async function publish(ingest: InProcessIngest, device: Device, payloads: string[]) {
  const client = await connect(ingest, device);
  try {
    await Promise.all(
      payloads.map((p) => client.publishAsync(topics.telemetry(device.id), p, { qos: 1 })),
    );
  } finally {
    await client.endAsync();
  }
}

const openStreams = new Set<AbortController>();

/** Server-Sent Events from `/api/v1/stream`, parsed as they arrive. */
async function openStream(ingest: InProcessIngest, query: string) {
  const controller = new AbortController();
  openStreams.add(controller);
  const live = ingest.app.get(LiveEvents);
  const listeners = live.listenerCount('alerts');
  const res = await fetch(`${ingest.url}/api/v1/stream?${query}`, {
    headers: { authorization: 'Bearer bootstrap-token-for-tests-0123456789' },
    signal: controller.signal,
  });
  const events: { event: string; data: unknown }[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  void (async () => {
    let buffer = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
    }
  })().catch(() => {});
  return {
    events,
    /** Resolves once the server has let go of the stream. */
    close: async () => {
      controller.abort();
      openStreams.delete(controller);
      await waitUntil(() => live.listenerCount('alerts') <= listeners, 'stream closed');
    },
  };
}

async function createRule(ingest: InProcessIngest, rule: Record<string, unknown>) {
  const res = await ingest.api('POST', '/api/v1/alert-rules', rule);
  if (res.status !== 201) throw new Error(`rule: ${JSON.stringify(res.body)}`);
  return res.body as { id: string; webhookSecret: string };
}

async function alerts(ingest: InProcessIngest, query: string) {
  const res = await ingest.api('GET', `/api/v1/alerts?${query}`);
  return res.body.items as Record<string, unknown>[];
}

/** Everything queued is evaluated and every due webhook sent. */
async function settled(ingest: InProcessIngest) {
  await ingest.app.get(AlertEngine).drained();
  const db = new Database(join(ingest.dataDir, 'alerts.db'), { readonly: true });
  try {
    await waitUntil(() => {
      const row = db
        .prepare<[number], { n: number }>(
          "SELECT count(*) AS n FROM alert_deliveries WHERE state = 'queued' AND next_attempt_at <= ?",
        )
        .get(ingest.clock.now() + 60_000);
      return row!.n === 0;
    }, 'webhook queue empty');
  } finally {
    db.close();
  }
}

const nowS = (ingest: InProcessIngest) => Math.floor(ingest.clock.now() / 1000);

/**
 * Whether attempt `n` of the webhook delivery for `device` is over (its failure recorded:
 * the next attempt is a backoff away, at most 4 s here, no longer a lease, 11 s, away), and
 * the row as stored.
 */
function deliveryRow(ingest: InProcessIngest, device: string) {
  const db = new Database(join(ingest.dataDir, 'alerts.db'), { readonly: true });
  try {
    return db
      .prepare<
        [string],
        {
          attempts: number;
          state: string;
          last_error: string | null;
          next_attempt_at: number;
          updated_at: number;
        }
      >(
        'SELECT attempts, state, last_error, next_attempt_at, updated_at FROM alert_deliveries WHERE device = ?',
      )
      .get(device);
  } finally {
    db.close();
  }
}

function attemptFailed(ingest: InProcessIngest, device: string, n: number): boolean {
  const r = deliveryRow(ingest, device);
  return (
    r?.attempts === n &&
    r.last_error !== null &&
    (r.state === 'dead' || r.next_attempt_at - r.updated_at <= 4000)
  );
}

describe('alerts (one app, real sockets)', () => {
  let ingest: InProcessIngest;
  let hook: Receiver;
  const devices = new Map<string, Device>();
  const enroll = async (id: string, tags?: Record<string, string>) => {
    const pair = await enrollDevice(ingest, id, tags ? { tags } : {});
    const d = { id, pair };
    devices.set(id, d);
    return d;
  };

  beforeAll(async () => {
    ingest = await startInProcess(ENV);
    hook = await startReceiver();
  });
  afterAll(async () => {
    for (const c of openStreams) c.abort();
    await ingest?.close();
    await hook?.close();
  });

  it('validates rules: refuses an impossible one with its reason, shows the secret once, needs the operator role', async () => {
    const impossible = await ingest.api('POST', '/api/v1/alert-rules', {
      metric: 'temperature',
      above: 90,
      clearBelow: 95,
    });
    expect(impossible.status).toBe(400);
    expect(impossible.body).toMatchObject({
      code: 'rule_impossible',
      detail:
        'rule refused: clearBelow 95 is above the limit 90: an alert raised above 90 would clear while still above it; use a clearBelow at or below 90',
    });
    const wrongKey = await ingest.api('POST', '/api/v1/alert-rules', {
      metric: 'temperature',
      below: 5,
      clearBelow: 3,
    });
    expect(wrongKey.body).toMatchObject({ code: 'rule_impossible' });
    const malformed = await ingest.api('POST', '/api/v1/alert-rules', {
      metric: 'temperature',
      above: 90,
      for: 'soon',
      channels: [{ type: 'webhook', url: 'ftp://example.com/x' }],
    });
    expect(malformed.status).toBe(400);
    expect(JSON.stringify(malformed.body)).toContain('body.for');
    expect(JSON.stringify(malformed.body)).toContain('body.channels.0.url');

    const created = await ingest.api('POST', '/api/v1/alert-rules', {
      name: 'boiler hot',
      metric: 'temperature',
      above: 90,
      clearBelow: 85,
      for: '30s',
      scope: { tags: { site: 'nowhere' } },
      severity: 'critical',
      channels: [{ type: 'webhook', url: hook.url }],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'boiler hot',
      kind: 'threshold',
      condition: 'temperature > 90 for 30s, clears < 85',
      for: '30s',
      clearFor: '0s',
      backfill: 'record',
      flap: { fires: 3, window: '15m' },
      createdBy: 'bootstrap',
    });
    expect(created.body.webhookSecret).toMatch(/^whsec_[\w-]{43}$/);
    const id = created.body.id as string;
    const shown = await ingest.api('GET', `/api/v1/alert-rules/${id}`);
    expect(shown.body).not.toHaveProperty('webhookSecret');
    expect(JSON.stringify((await ingest.api('GET', '/api/v1/alert-rules')).body)).not.toContain(
      created.body.webhookSecret as string,
    );

    const patched = await ingest.api('PATCH', `/api/v1/alert-rules/${id}`, {
      clearBelow: null,
      for: 0,
      flap: null,
    });
    expect(patched.body).toMatchObject({ condition: 'temperature > 90', flap: null });
    const refused = await ingest.api('PATCH', `/api/v1/alert-rules/${id}`, { clearBelow: 91 });
    expect(refused.body).toMatchObject({ code: 'rule_impossible' });

    const viewer = await ingest.api('POST', '/api/v1/tokens', { name: 'wall', roles: ['viewer'] });
    const asViewer = { token: viewer.body.token as string };
    expect((await ingest.api('GET', '/api/v1/alerts', undefined, asViewer)).status).toBe(200);
    expect((await ingest.api('GET', '/api/v1/alert-rules', undefined, asViewer)).status).toBe(403);
    expect(
      (await ingest.api('POST', '/api/v1/alert-rules', { metric: 'x', above: 1 }, asViewer)).status,
    ).toBe(403);
    expect((await ingest.api('DELETE', `/api/v1/alert-rules/${id}`)).status).toBe(200);
    expect((await ingest.api('GET', `/api/v1/alert-rules/${id}`)).status).toBe(404);
  });

  it('raises exactly one webhook notification per transition under 100 concurrent batches', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `conc-${i}`);
    for (const id of ids) await enroll(id);
    const rule = await createRule(ingest, {
      name: 'load high',
      metric: 'load',
      above: 50,
      clearBelow: 40,
      flap: null,
      scope: { devices: ids },
      channels: [{ type: 'webhook', url: hook.url }, { type: 'log' }],
    });
    const stream = await openStream(ingest, 'types=alerts');
    const base = nowS(ingest) - 100;
    // 10 devices × 10 batches of 5 readings, all published at once: every reading is over
    // the limit, in whatever order they are accepted.
    await Promise.all(
      ids.map(async (id, d) => {
        const device = devices.get(id)!;
        const payloads = await Promise.all(
          Array.from({ length: 10 }, (_, j) =>
            batch(device, 'load', [60 + j, 61, 62, 63, 64 + d], base + j * 0.1),
          ),
        );
        await publish(ingest, device, payloads);
      }),
    );
    await settled(ingest);
    // Then all of it back under the clear limit, later.
    await Promise.all(
      ids.map(async (id) => {
        const device = devices.get(id)!;
        const payloads = await Promise.all(
          Array.from({ length: 10 }, (_, j) =>
            batch(device, 'load', [10, 11, 12, 13, 14], base + 50 + j * 0.1),
          ),
        );
        await publish(ingest, device, payloads);
      }),
    );
    await settled(ingest);

    const mine = hook.hits.filter((h) => h.message.alert.ruleId === rule.id);
    expect(mine).toHaveLength(20);
    for (const id of ids) expect(hook.of(id)).toEqual(['alert.firing', 'alert.resolved']);
    const deliveries = new Set(mine.map((h) => h.headers['x-outpost-delivery']));
    expect(deliveries.size).toBe(20);
    for (const h of mine) expect(hook.signedBy(rule.webhookSecret, h, nowS(ingest))).toBe(true);
    const firing = mine.find((h) => h.message.type === 'alert.firing')!.message;
    expect(firing.explain).toMatchObject({ limit: 50, clearLimit: 40, backfilled: false });
    const resolved = mine.find((h) => h.message.type === 'alert.resolved')!.message;
    expect(resolved.explain.incidentMs).toBeGreaterThan(49_000);
    // Which reading came first depends on arrival order: the peak and the exact length vary.
    expect(resolved.summary).toMatch(
      /^load on conc-\d back below 40 \(now 10\); firing lasted (49|50)(\.\d)?s, peak \d+$/,
    );

    // The store agrees: one alert per device, resolved; the stream saw the same transitions.
    const stored = await alerts(ingest, `rule=${rule.id}&limit=100`);
    expect(stored).toHaveLength(10);
    expect(stored.every((a) => a.state === 'resolved' && a.paged === true)).toBe(true);
    await waitUntil(
      () =>
        stream.events.filter((e) => (e.data as AlertMessage).alert.ruleId === rule.id).length ===
        20,
      'stream events',
    );
    await stream.close();
  });

  it('records backfilled readings without paging, and pages once live data agrees', async () => {
    const device = await enroll('bf-1');
    const rule = await createRule(ingest, {
      metric: 'pressure',
      above: 5,
      scope: { devices: ['bf-1'] },
      channels: [{ type: 'webhook', url: hook.url }],
    });
    const t = nowS(ingest);
    await publish(ingest, device, [
      await batch(device, 'pressure', [7, 8], t - 3600, { bf: true }),
    ]);
    await settled(ingest);
    const [recorded] = await alerts(ingest, `rule=${rule.id}`);
    expect(recorded).toMatchObject({
      state: 'firing',
      paged: false,
      quiet: 'backfilled',
      summary: 'pressure on bf-1 is 7, above 5; recorded from backfilled data, not paged',
    });
    expect(hook.of('bf-1')).toEqual([]);

    await publish(ingest, device, [await batch(device, 'pressure', [9], t)]);
    await settled(ingest);
    expect(hook.of('bf-1')).toEqual(['alert.firing']);
    const late = hook.hits.find((h) => h.message.alert.device === 'bf-1')!.message;
    expect(late.explain).toMatchObject({ late: true, backfilled: false });
    expect(await alerts(ingest, `rule=${rule.id}`)).toMatchObject([
      { id: recorded!.id, state: 'firing', paged: true, quiet: null },
    ]);
  });

  it('acknowledges once: viewers may not, operators may, the webhook hears it once', async () => {
    const device = await enroll('ack-1');
    const rule = await createRule(ingest, {
      metric: 'level',
      below: 10,
      scope: { devices: ['ack-1'] },
      channels: [{ type: 'webhook', url: hook.url }],
    });
    await publish(ingest, device, [await batch(device, 'level', [3], nowS(ingest))]);
    await settled(ingest);
    const [open] = await alerts(ingest, `rule=${rule.id}&state=firing`);
    const id = open!.id as string;

    const viewer = await ingest.api('POST', '/api/v1/tokens', {
      name: 'viewer',
      roles: ['viewer'],
    });
    const operator = await ingest.api('POST', '/api/v1/tokens', {
      name: 'ops-alice',
      roles: ['operator'],
    });
    const denied = await ingest.api('POST', `/api/v1/alerts/${id}/ack`, undefined, {
      token: viewer.body.token as string,
    });
    expect(denied.status).toBe(403);
    const acks = await Promise.all(
      Array.from({ length: 5 }, () =>
        ingest.api('POST', `/api/v1/alerts/${id}/ack`, undefined, {
          token: operator.body.token as string,
        }),
      ),
    );
    expect(acks.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(acks[0]!.body).toMatchObject({ acknowledgedBy: 'ops-alice', state: 'firing' });
    await settled(ingest);
    expect(hook.of('ack-1')).toEqual(['alert.firing', 'alert.acknowledged']);
    const ack = hook.hits.find((h) => h.message.type === 'alert.acknowledged')!.message;
    expect(ack.acknowledged).toMatchObject({ by: 'ops-alice' });
    expect(await alerts(ingest, `rule=${rule.id}&acknowledged=true`)).toHaveLength(1);
    expect((await ingest.api('POST', '/api/v1/alerts/no-such-alert/ack')).status).toBe(404);
  });

  it('streams every transition on the SSE stream, pending and cancelled included', async () => {
    const device = await enroll('sse-1');
    const stream = await openStream(ingest, 'types=alerts&device=sse-1');
    await createRule(ingest, {
      metric: 'humidity',
      above: 80,
      for: '1m',
      scope: { devices: ['sse-1'] },
    });
    const t = nowS(ingest);
    await publish(ingest, device, [await batch(device, 'humidity', [85], t - 20)]);
    await publish(ingest, device, [await batch(device, 'humidity', [70], t - 10)]);
    await waitUntil(() => stream.events.length === 2, 'two alert events');
    await stream.close();
    expect(stream.events.map((e) => [e.event, (e.data as AlertMessage).type])).toEqual([
      ['alerts', 'alert.pending'],
      ['alerts', 'alert.cancelled'],
    ]);
    expect((stream.events[1]!.data as AlertMessage).summary).toBe(
      'humidity on sse-1 fell back to 70 after 10s, before the 1m it must hold',
    );
  });

  it('fires an offline rule after the silence and resolves it when the device is back', async () => {
    const device = await enroll('off-1', { site: 'far' });
    const rule = await createRule(ingest, {
      kind: 'offline',
      after: '10m',
      scope: { tags: { site: 'far' } },
      severity: 'critical',
      channels: [{ type: 'webhook', url: hook.url }],
    });
    await publish(ingest, device, [await batch(device, 'temperature', [20], nowS(ingest))]);
    await waitUntil(
      async () => (await ingest.api('GET', '/api/v1/alert-rules')).status === 200,
      'rules',
    );
    ingest.clock.advance(11 * 60_000);
    await ingest.app.get(AlertEngine).tick();
    await settled(ingest);
    expect(hook.of('off-1')).toEqual(['alert.firing']);
    const fired = hook.hits.find((h) => h.message.alert.device === 'off-1')!.message;
    expect(fired.summary).toMatch(/^off-1: no reading or state for 1[01]m\d*s? \(last heard /);

    await publish(ingest, device, [await batch(device, 'temperature', [21], nowS(ingest))]);
    await settled(ingest);
    expect(hook.of('off-1')).toEqual(['alert.firing', 'alert.resolved']);
    expect(await alerts(ingest, `rule=${rule.id}`)).toMatchObject([{ state: 'resolved' }]);
  });

  it('resolves open alerts when their rule changes or is deleted, saying why', async () => {
    const device = await enroll('chg-1');
    const rule = await createRule(ingest, {
      metric: 'rpm',
      above: 1000,
      scope: { devices: ['chg-1'] },
      channels: [{ type: 'webhook', url: hook.url }],
    });
    await publish(ingest, device, [await batch(device, 'rpm', [1500], nowS(ingest))]);
    await settled(ingest);
    // Renaming or re-routing keeps the alert; changing the condition retires it.
    await ingest.api('PATCH', `/api/v1/alert-rules/${rule.id}`, { name: 'spin', severity: 'info' });
    await settled(ingest);
    expect(await alerts(ingest, `rule=${rule.id}&state=open`)).toHaveLength(1);
    await ingest.api('PATCH', `/api/v1/alert-rules/${rule.id}`, { above: 2000 });
    await settled(ingest);
    expect(hook.of('chg-1')).toEqual(['alert.firing', 'alert.resolved']);
    const resolved = hook.hits.filter((h) => h.message.alert.device === 'chg-1')[1]!.message;
    expect(resolved.explain.reason).toBe('rule_changed');
    expect(resolved.summary).toMatch(/resolved because the rule was changed/);

    await publish(ingest, device, [await batch(device, 'rpm', [2500], nowS(ingest))]);
    await settled(ingest);
    await ingest.api('DELETE', `/api/v1/alert-rules/${rule.id}`);
    await settled(ingest);
    expect(hook.of('chg-1')).toEqual([
      'alert.firing',
      'alert.resolved',
      'alert.firing',
      'alert.resolved',
    ]);
    const listed = await alerts(ingest, `rule=${rule.id}`);
    expect(listed.map((a) => [a.state, a.ruleName])).toEqual([
      ['resolved', 'spin'],
      ['resolved', 'spin'],
    ]);
  });

  it('delivers to a receiver that was down, later and once', async () => {
    const device = await enroll('down-1');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/hooks/outpost`;
    await createRule(ingest, {
      metric: 'vibration',
      above: 3,
      scope: { devices: ['down-1'] },
      channels: [{ type: 'webhook', url }],
    });
    await publish(ingest, device, [await batch(device, 'vibration', [4], nowS(ingest))]);
    await ingest.app.get(AlertEngine).drained();
    const row = () => deliveryRow(ingest, 'down-1');
    const failed = (n: number) => attemptFailed(ingest, 'down-1', n);
    await waitUntil(() => failed(1), 'first attempt');
    expect(row()!.last_error).toMatch(/ECONNREFUSED/);
    ingest.clock.advance(1000);
    await waitUntil(() => failed(2), 'second attempt');
    const late = await startReceiver(port);
    try {
      ingest.clock.advance(4000);
      await waitUntil(() => late.hits.length === 1, 'delivered once the receiver is up');
      await waitUntil(() => row()?.state === 'delivered', 'marked delivered');
      ingest.clock.advance(60_000);
      await ingest.app.get(AlertEngine).tick();
      await settled(ingest);
      expect(late.hits.map((h) => h.message.type)).toEqual(['alert.firing']);
      expect(late.hits[0]!.headers['x-outpost-delivery']).toBeTruthy();
    } finally {
      await late.close();
    }
  });

  it('dead-letters what cannot be delivered, shows it, and delivers it on retry', async () => {
    const device = await enroll('dead-1');
    const failing = await startReceiver();
    try {
      failing.mode = 'fail';
      await createRule(ingest, {
        metric: 'current',
        above: 16,
        scope: { devices: ['dead-1'] },
        channels: [{ type: 'webhook', url: failing.url }],
      });
      await publish(ingest, device, [await batch(device, 'current', [20], nowS(ingest))]);
      await waitUntil(() => attemptFailed(ingest, 'dead-1', 1), 'first attempt');
      ingest.clock.advance(4000);
      await waitUntil(() => attemptFailed(ingest, 'dead-1', 2), 'second attempt');
      ingest.clock.advance(4000);
      await waitUntil(() => attemptFailed(ingest, 'dead-1', 3), 'third attempt');
      expect(failing.hits).toHaveLength(3);
      const dead = await waitUntil(async () => {
        const res = await ingest.api('GET', '/api/v1/alerts/dead-letters');
        const items = res.body.items as Record<string, unknown>[];
        return items.find((d) => d.device === 'dead-1');
      }, 'dead letter listed');
      expect(dead).toMatchObject({
        event: 'alert.firing',
        attempts: 3,
        lastStatus: 500,
        lastError: 'HTTP 500',
        state: 'dead',
        url: failing.url,
      });
      failing.mode = 'ok';
      const retried = await ingest.api('POST', `/api/v1/alerts/dead-letters/${dead.id}/retry`);
      expect(retried.body).toMatchObject({ state: 'queued', attempts: 0 });
      await waitUntil(() => failing.hits.length === 4, 'delivered on retry');
      await settled(ingest);
      const after = (await ingest.api('GET', '/api/v1/alerts/dead-letters')).body.items as {
        id: string;
      }[];
      expect(after.map((d) => d.id)).not.toContain(dead.id);
      expect(new Set(failing.hits.map((h) => h.headers['x-outpost-delivery'])).size).toBe(1);
      expect(
        (await ingest.api('POST', `/api/v1/alerts/dead-letters/${dead.id}/retry`)).status,
      ).toBe(404);
    } finally {
      await failing.close();
    }
  });

  it('keeps accepting readings and raising alerts while a webhook hangs', async () => {
    const slow = await startReceiver();
    slow.mode = 'hang';
    const ids = Array.from({ length: 5 }, (_, i) => `slow-${i}`);
    try {
      for (const id of ids) await enroll(id);
      await createRule(ingest, {
        metric: 'flow',
        above: 1,
        scope: { devices: ids },
        channels: [{ type: 'webhook', url: slow.url }],
      });
      const stream = await openStream(
        ingest,
        `types=alerts&${ids.map((d) => `device=${d}`).join('&')}`,
      );
      const first = devices.get(ids[0]!)!;
      await publish(ingest, first, [await batch(first, 'flow', [5], nowS(ingest))]);
      await waitUntil(() => slow.hits.length === 1, 'the webhook is hanging');
      // Every further batch is acknowledged and evaluated while that request hangs.
      for (const id of ids.slice(1)) {
        const d = devices.get(id)!;
        const payloads = await Promise.all(
          Array.from({ length: 10 }, (_, j) =>
            batch(d, 'flow', [2 + j], nowS(ingest) - 5 + j / 10),
          ),
        );
        await publish(ingest, d, payloads);
      }
      await waitUntil(() => stream.events.length === 5, 'all five alerts on the stream');
      await stream.close();
      expect(slow.hits.length).toBeGreaterThanOrEqual(1);
      const stored = await ingest.api('GET', `/api/v1/devices/${ids[4]}/latest`);
      expect(stored.body.metrics).toMatchObject([{ metric: 'flow', value: 11 }]);
    } finally {
      await slow.close();
    }
  });
});

describe('alerts across a restart', () => {
  let dataDir: string;
  let hook: Receiver;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'outpost-alerts-restart-'));
    hook = await startReceiver();
  });
  afterAll(async () => {
    await hook?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps a pending `for` timer through a restart, fires once, and never again', async () => {
    const clock = new TestClock();
    let ingest = await startInProcess(ENV, { dataDir, clock });
    let device!: Device;
    let rule!: { id: string; webhookSecret: string };
    let openedAt: unknown;
    try {
      device = { id: 'boiler-7', pair: await enrollDevice(ingest, 'boiler-7') };
      rule = await createRule(ingest, {
        metric: 'temperature',
        above: 90,
        for: '30s',
        scope: { devices: ['boiler-7'] },
        channels: [{ type: 'webhook', url: hook.url }],
      });
      await publish(ingest, device, [await batch(device, 'temperature', [93.5], nowS(ingest))]);
      await ingest.app.get(AlertEngine).drained();
      const [pending] = await alerts(ingest, `rule=${rule.id}`);
      expect(pending).toMatchObject({ state: 'pending' });
      openedAt = pending!.openedAt;
      clock.advance(10_000);
    } finally {
      await ingest.close();
    }
    expect(hook.hits).toEqual([]);

    // 31 s after the reading, no new reading: the restored timer fires.
    clock.advance(21_000);
    ingest = await startInProcess(ENV, { dataDir, clock });
    try {
      await waitUntil(() => hook.hits.length === 1, 'the firing notification');
      const fired = hook.hits[0]!.message;
      expect(fired).toMatchObject({
        type: 'alert.firing',
        alert: { openedAt, state: 'firing' },
        explain: { heldMs: 30_000, timer: true, value: 93.5 },
      });
      expect(hook.signedBy(rule.webhookSecret, hook.hits[0]!, nowS(ingest))).toBe(true);
    } finally {
      await ingest.close();
    }

    clock.advance(5000);
    ingest = await startInProcess(ENV, { dataDir, clock });
    try {
      await ingest.app.get(AlertEngine).tick();
      await publish(ingest, device, [await batch(device, 'temperature', [95], nowS(ingest))]);
      await ingest.app.get(AlertEngine).tick();
      await settled(ingest);
      expect(hook.hits).toHaveLength(1);
      expect(await alerts(ingest, `rule=${rule.id}`)).toMatchObject([
        { state: 'firing', openedAt, peak: 95 },
      ]);
    } finally {
      await ingest.close();
    }
  });
});
