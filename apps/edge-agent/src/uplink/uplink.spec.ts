import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Reading } from '@outpost/protocol/senml';
import type { TelemetryBatch } from '@outpost/protocol/telemetry';
import { generateKeyPair } from '@outpost/signing/keys';
import { importSigningKey, type SigningKey } from '@outpost/signing/sign';
import { fakeClock } from '@outpost/test-kit/clock';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpFetch } from '../http/node-http-fetch.js';
import { AgentMetrics } from '../metrics/agent-metrics.js';
import { decodePack } from '../outbox/downsample.js';
import { MemoryOutbox } from '../outbox/memory-outbox.js';
import type { NewBatch, Outbox } from '../outbox/outbox.js';
import { packReadings } from '../outbox/pack.js';
import { SqliteOutbox } from '../outbox/sqlite-outbox.js';
import { ChildStanding } from './child-standing.js';
import { DeviceTokens } from './device-token.js';
import { HttpTelemetry } from './http-telemetry.js';
import { type BatchPublisher, Uplink } from './uplink.js';

// Real parts: Uplink, MemoryOutbox (same contract as SQLite; SqliteOutbox where its ids
// matter), signatures, ChildStanding. Fake: the MQTT session (a strict fake that records each
// publish and is resolved by the test) and time.

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
  return mixedBatch(createdMs, ['th-1'], n);
}

function setup(
  options: { window?: number; http?: HttpTelemetry; outbox?: Outbox; notChild?: boolean } = {},
) {
  const clock = fakeClock(Date.UTC(2025, 5, 1));
  const outbox = options.outbox ?? new MemoryOutbox({ maxBytes: 1 << 30, whenFull: 'drop-oldest' });
  const session = new FakeSession(clock);
  const metrics = new AgentMetrics({ defaultMetrics: false });
  const standing = new ChildStanding({ gatewayId: GW });
  // This boot's numbers for re-queued parts, as Intake.claimSeq hands them out.
  let nextSeq = 5_000;
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
    notChild: options.notChild
      ? {
          publisherId: GW,
          standing,
          renumber: (n) => {
            const seq: [number, number] = [nextSeq, nextSeq + n - 1];
            nextSeq += n;
            return { boot: 'bootBBBB2', seq };
          },
        }
      : undefined,
  });
  return { clock, outbox, session, uplink, metrics, standing };
}

/** A batch of `devices` readings in turn, `n` of them, as the intake would append it. */
function mixedBatch(createdMs: number, devices: readonly string[], n: number): NewBatch {
  const readings: Reading[] = Array.from({ length: n }, (_, i) => ({
    deviceId: devices[i % devices.length]!,
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

const devicesOf = (records: TelemetryBatch['records']) =>
  [...new Set(records.map((r) => `${r.bn ?? ''}`))].filter((bn) => bn !== '');

async function counter(metrics: AgentMetrics, name: string): Promise<string[]> {
  return (await metrics.registry.getSingleMetricAsString(name))
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
}

const tmp = mkdtempSync(join(tmpdir(), 'uplink-spec-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

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

  describe('a batch refused as not_child', () => {
    it('is split: the readings of the gateway and its registered children are sent again under new numbers, the stranger quarantined and kept apart', async () => {
      const { clock, outbox, session, uplink, metrics, standing } = setup({ notChild: true });
      standing.answered([
        ['th-1', true],
        ['stranger-1', false],
      ]);
      session.up = true;
      const refused = mixedBatch(clock.now(), ['th-1', 'stranger-1', GW], 9);
      outbox.append(refused);
      uplink.kick();
      await settle();
      const [first] = session.open;
      // PROTOCOL.md §9: acknowledged, then refused on the commands topic.
      ackAll([first!]);
      await settle();
      expect(outbox.stats().pending).toBe(0);
      expect(uplink.rejected(refused, 'not_child', 'not a child of gw-1: stranger-1')).toBe(true);
      await settle();

      const [again] = session.open;
      expect(again!.batch.boot).toBe('bootBBBB2');
      expect(again!.batch.seq).toEqual([5_000, 5_005]);
      const all = decodePack(refused.pack, GW);
      const resent = all.filter((r) => r.deviceId !== 'stranger-1');
      expect(again!.batch.records).toHaveLength(6);
      expect(devicesOf(again!.batch.records)).toEqual(['th-1/']);
      ackAll([again!]);
      await settle();
      expect(outbox.stats()).toMatchObject({
        pending: 0,
        quarantined: 1,
        quarantinedRecords: 3,
        counters: { requeuedRecords: 6, ackedRecords: 15 },
      });
      const [q] = outbox.listQuarantine(5);
      expect(q).toMatchObject({ boot: refused.boot, seq: refused.seq, reason: 'not_child' });
      expect(decodePack(q!.pack, GW)).toEqual(all.filter((r) => r.deviceId === 'stranger-1'));
      expect(resent).toHaveLength(6);
      expect(standing.isolated('stranger-1')).toBe(true);
      expect(standing.isolated('th-1')).toBe(false);
      expect(await counter(metrics, 'outpost_agent_uplink_batches_split_total')).toEqual([
        'outpost_agent_uplink_batches_split_total 1',
      ]);
      expect(await counter(metrics, 'outpost_agent_uplink_batches_rejected_total')).toEqual([
        'outpost_agent_uplink_batches_rejected_total{reason="not_child"} 1',
      ]);
    });

    it('is quarantined whole when none of its devices is known registered, and when all are', async () => {
      const { clock, outbox, session, uplink, metrics, standing } = setup({ notChild: true });
      standing.answered([['th-1', true]]);
      session.up = true;
      // th-2 is a local sensor whose standing the agent cannot know: set apart with the stranger.
      const strangers = mixedBatch(clock.now(), ['stranger-1', 'th-2'], 4);
      const known = mixedBatch(clock.now(), ['th-1', GW], 4);
      outbox.append(strangers);
      outbox.append(known);
      uplink.kick();
      await settle();
      expect(uplink.rejected(strangers, 'not_child', undefined)).toBe(true);
      // What the agent believed is out of date (th-1 unregistered since it subscribed): the
      // batch is not sent again, or it would be refused for ever.
      expect(uplink.rejected(known, 'not_child', undefined)).toBe(true);
      ackAll(session.open);
      await settle();
      expect(session.open).toEqual([]);
      expect(outbox.listQuarantine(5).map((q) => [q.seq, q.records])).toEqual([
        [known.seq, 4],
        [strangers.seq, 4],
      ]);
      expect(outbox.stats()).toMatchObject({ pending: 0, counters: { requeuedRecords: 0 } });
      expect(['stranger-1', 'th-2', 'th-1'].map((id) => standing.isolated(id))).toEqual([
        true,
        true,
        false,
      ]);
      expect(await counter(metrics, 'outpost_agent_uplink_batches_split_total')).toEqual([
        'outpost_agent_uplink_batches_split_total 0',
      ]);
    });

    it('is split also when refused while still pending, and a late PUBACK of it removes nothing else (SQLite reuses ids)', async () => {
      const outbox = new SqliteOutbox({
        path: join(tmp, 'late-puback.db'),
        maxBytes: 1 << 30,
        whenFull: 'drop-oldest',
      });
      const { clock, session, uplink, standing } = setup({ notChild: true, outbox });
      standing.answered([['th-1', true]]);
      session.up = true;
      const refused = mixedBatch(clock.now(), ['th-1', 'stranger-1'], 4);
      outbox.append(refused);
      uplink.kick();
      await settle();
      const [late] = session.open;
      // Refused before its PUBACK came (HTTP, or a PUBACK held up).
      expect(uplink.rejected(refused, 'not_child', undefined)).toBe(true);
      settled.add(late!);
      await settle();
      const [requeued] = session.open;
      expect(requeued!.batch.records).toHaveLength(2);
      ackAll([requeued!]);
      await settle();
      expect(outbox.stats().pending).toBe(0);
      // The outbox is empty: the next batch gets the refused batch's id again.
      const next = batchAt(clock.now(), 3);
      const appended = outbox.append(next);
      expect(appended).toMatchObject({ stored: true, id: 1 });
      late!.ack();
      await settle();
      expect(outbox.find(next)).toBeDefined();
      const [sent] = session.open;
      expect(sent!.batch.seq).toEqual(next.seq);
      ackAll([sent!]);
      await settle();
      expect(outbox.stats()).toMatchObject({ pending: 0, counters: { ackedRecords: 5 } });
      uplink.stop();
      outbox.close();
    });
  });
});
