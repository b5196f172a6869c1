import type { TelemetryBatch } from '@outpost/protocol/telemetry';
import { generateKeyPair } from '@outpost/signing/keys';
import { importSigningKey, type SigningKey } from '@outpost/signing/sign';
import { fakeClock } from '@outpost/test-kit/clock';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import type { HttpFetch } from '../http/node-http-fetch.js';
import { AgentMetrics } from '../metrics/agent-metrics.js';
import { MemoryOutbox } from '../outbox/memory-outbox.js';
import type { NewBatch } from '../outbox/outbox.js';
import { packReadings } from '../outbox/pack.js';
import { DeviceTokens } from './device-token.js';
import { HttpTelemetry } from './http-telemetry.js';
import { type BatchPublisher, Uplink } from './uplink.js';

// Real parts: Uplink, MemoryOutbox (same contract as SQLite), signatures. Fake: the MQTT
// session (a strict fake that records each publish and is resolved by the test) and time.

const GW = 'gw-1';
const TOPIC = `v1/devices/${GW}/telemetry`;
let key: SigningKey;

beforeAll(async () => {
  key = await importSigningKey((await generateKeyPair()).privateJwk);
});

interface Sent {
  batch: TelemetryBatch;
  ack(): void;
  fail(): void;
}

/** An MQTT session the test drives: up or down, and each publish settled by hand. */
class FakeSession implements BatchPublisher {
  up = false;
  downSince: number;
  readonly sent: Sent[] = [];
  resets = 0;

  constructor(private readonly clock: { now(): number }) {
    this.downSince = clock.now();
  }

  publish(topic: string, payload: string): Promise<void> {
    if (topic !== TOPIC) throw new Error(`unexpected topic ${topic}`);
    if (!this.up) throw new Error('publish while down');
    const batch = JSON.parse(
      Buffer.from(payload.split('.')[1]!, 'base64url').toString(),
    ) as TelemetryBatch;
    return new Promise((resolve, reject) => {
      this.sent.push({ batch, ack: resolve, fail: () => reject(new Error('closed')) });
    });
  }

  downForMs(): number {
    return this.up ? 0 : this.clock.now() - this.downSince;
  }

  reset(): void {
    this.resets++;
    this.up = false;
    this.downSince = this.clock.now();
  }

  /** Sends not yet settled. */
  get open(): Sent[] {
    return this.sent.filter((s) => !settled.has(s));
  }
}

const settled = new WeakSet<Sent>();
const ackAll = (sends: Sent[]) => {
  for (const s of sends) {
    settled.add(s);
    s.ack();
  }
};
const failAll = (sends: Sent[]) => {
  for (const s of sends) {
    settled.add(s);
    s.fail();
  }
};
/** Lets signatures (WebCrypto, off the main thread), publish callbacks and acks run. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 2));
};

let seq = 0;
function batchAt(createdMs: number, n = 10): NewBatch {
  const readings = Array.from({ length: n }, (_, i) => ({
    deviceId: 'th-1',
    metric: 'seq',
    time: createdMs / 1000 + i / 100,
    value: seq + i,
    backfilled: false,
    clock: 'synced' as const,
  }));
  const from = seq;
  seq += n;
  return {
    boot: 'bootAAAA1',
    seq: [from, from + n - 1],
    createdMs,
    records: n,
    pack: packReadings(readings, GW)[0]!.pack,
  };
}

function setup(options: { window?: number; http?: HttpTelemetry } = {}) {
  const clock = fakeClock(Date.UTC(2025, 5, 1));
  const outbox = new MemoryOutbox({ maxBytes: 1 << 30, whenFull: 'drop-oldest' });
  const session = new FakeSession(clock);
  const metrics = new AgentMetrics({ defaultMetrics: false });
  const uplink = new Uplink({
    outbox,
    key,
    topic: TOPIC,
    mqtt: session,
    http: options.http,
    window: options.window ?? 16,
    backfillAfterMs: 10_000,
    ackTimeoutMs: 30_000,
    httpAfterMs: 30_000,
    now: clock.now,
    monotonic: clock.now,
    logger: pino({ level: 'silent' }),
    metrics,
  });
  return { clock, outbox, session, uplink, metrics };
}

describe('Uplink', () => {
  it('keeps every batch through a 10-minute outage (injected time) and sends each once after, in a bounded window', async () => {
    const { clock, outbox, session, uplink } = setup({ window: 16 });
    const refs: string[] = [];
    // Ten minutes of batches every 2 s while the ingest is unreachable.
    for (let t = 0; t < 600_000; t += 2000) {
      clock.advance(2000);
      const b = batchAt(clock.now());
      refs.push(`${b.boot}/${b.seq[0]}`);
      outbox.append(b);
      uplink.kick();
      uplink.tick();
    }
    await settle();
    expect(session.sent).toHaveLength(0);
    expect(outbox.stats()).toMatchObject({ pending: 300, counters: { droppedRecords: 0 } });

    session.up = true;
    uplink.kick();
    const sentRefs: string[] = [];
    while (outbox.stats().pending > 0) {
      await settle();
      const open = session.open;
      expect(open.length).toBeGreaterThan(0);
      expect(open.length).toBeLessThanOrEqual(16);
      for (const s of open) sentRefs.push(`${s.batch.boot}/${s.batch.seq[0]}`);
      ackAll(open);
      await settle();
    }
    // Each batch once, in order, with the (boot, seq) it got when it entered the outbox.
    expect(sentRefs).toEqual(refs);
    // Late: every record of a batch older than 10 s carries bf: true.
    const first = session.sent[0]!.batch;
    expect(first.records.every((r) => r.bf === true)).toBe(true);
    expect(outbox.stats().counters.ackedRecords).toBe(3000);
  });

  it('sends again, unchanged, what was in flight when the session dropped', async () => {
    const { clock, outbox, session, uplink } = setup({ window: 4 });
    session.up = true;
    for (let i = 0; i < 6; i++) outbox.append(batchAt(clock.now()));
    uplink.kick();
    await settle();
    const first = session.open;
    expect(first).toHaveLength(4);
    // The connection closes before any PUBACK.
    session.up = false;
    uplink.sessionDown();
    failAll(first);
    await settle();
    expect(outbox.stats().pending).toBe(6);
    session.up = true;
    uplink.kick();
    await settle();
    const again = session.open;
    expect(again.map((s) => s.batch.seq)).toEqual(first.map((s) => s.batch.seq));
    // A resend is late by definition.
    expect(again[0]!.batch.records.every((r) => r.bf === true)).toBe(true);
    ackAll(again);
    await settle();
    ackAll(session.open);
    await settle();
    expect(outbox.stats().pending).toBe(0);
  });

  it('quarantines a batch refused after its PUBACK, and one refused while in flight', async () => {
    const { clock, outbox, session, uplink, metrics } = setup();
    session.up = true;
    outbox.append(batchAt(clock.now()));
    outbox.append(batchAt(clock.now()));
    uplink.kick();
    await settle();
    const [a, b] = session.open;
    ackAll([a!]);
    await settle();
    // PROTOCOL.md §9: the refusal arrives on the commands topic after the PUBACK.
    expect(uplink.rejected(a!.batch, 'not_child', 'stranger-1')).toBe(true);
    expect(uplink.rejected(b!.batch, 'schema', undefined)).toBe(true);
    ackAll([b!]);
    await settle();
    expect(outbox.listQuarantine(5).map((q) => [q.seq, q.reason])).toEqual([
      [b!.batch.seq, 'schema'],
      [a!.batch.seq, 'not_child'],
    ]);
    expect(outbox.stats()).toMatchObject({ pending: 0, quarantined: 2 });
    expect(uplink.rejected({ boot: 'unknownX1', seq: [1, 2] }, 'schema', undefined)).toBe(false);
    expect(
      (
        await metrics.registry.getSingleMetricAsString(
          'outpost_agent_uplink_batches_rejected_total',
        )
      )
        .split('\n')
        .filter((l) => !l.startsWith('#')),
    ).toEqual([
      'outpost_agent_uplink_batches_rejected_total{reason="not_child"} 1',
      'outpost_agent_uplink_batches_rejected_total{reason="schema"} 1',
    ]);
  });

  it('resets a session whose PUBACK does not come within the ack timeout', async () => {
    const { clock, outbox, session, uplink } = setup();
    session.up = true;
    outbox.append(batchAt(clock.now()));
    uplink.kick();
    await settle();
    expect(session.open).toHaveLength(1);
    clock.advance(31_000);
    uplink.tick();
    expect(session.resets).toBe(1);
    expect(uplink.inflight).toBe(0);
  });

  it('falls back to HTTP after MQTT has been down for a while, and quarantines an HTTP refusal', async () => {
    const posts: { auth: string; type: string; body: TelemetryBatch }[] = [];
    const clockRef: { now(): number } = { now: () => 0 };
    const fetchFake: HttpFetch = async (_url, init) => {
      const body = JSON.parse(
        Buffer.from(String(init?.body).split('.')[1]!, 'base64url').toString(),
      ) as TelemetryBatch;
      const headers = init?.headers ?? {};
      posts.push({ auth: headers.authorization!, type: headers['content-type']!, body });
      if (body.records.some((r) => r.n === 'bad')) {
        return new Response(
          JSON.stringify({ status: 400, code: 'telemetry_schema', detail: 'bad record' }),
          { status: 400, headers: { 'content-type': 'application/problem+json' } },
        );
      }
      return new Response(JSON.stringify({ outcome: 'accepted' }), { status: 200 });
    };
    const tokens = new DeviceTokens({
      key,
      deviceId: GW,
      audience: 'outpost',
      now: () => clockRef.now(),
    });
    const http = new HttpTelemetry({ server: 'http://ingest.test:8080', tokens, fetch: fetchFake });
    const { clock, outbox, session, uplink } = setup({ http });
    clockRef.now = clock.now;
    outbox.append(batchAt(clock.now()));
    const bad = packReadings(
      [
        {
          deviceId: GW,
          metric: 'bad',
          time: clock.now() / 1000,
          value: 1,
          backfilled: false,
          clock: undefined,
        },
      ],
      GW,
    )[0]!;
    outbox.append({
      boot: 'bootAAAA1',
      seq: [900, 900],
      createdMs: clock.now(),
      records: 1,
      pack: bad.pack,
    });
    uplink.kick();
    await settle();
    expect(posts).toHaveLength(0);
    clock.advance(31_000);
    uplink.tick();
    await settle();
    expect(posts).toHaveLength(2);
    expect(posts[0]!.auth).toMatch(/^Bearer ey/);
    expect(posts[0]!.type).toBe('application/jose');
    expect(outbox.stats()).toMatchObject({ pending: 0, quarantined: 1 });
    expect(outbox.listQuarantine(1)[0]).toMatchObject({ reason: 'schema', detail: 'bad record' });
    expect(session.sent).toHaveLength(0);
  });
});
