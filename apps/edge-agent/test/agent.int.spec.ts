import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { waitFor } from '@outpost/test-kit/process';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  apiOf,
  connectSensor,
  enrollGateway,
  ingestMetric,
  outboxSnapshot,
  runCli,
  type Sensor,
  sleep,
  startAgent,
  storedPoints,
} from './support/agent-harness.js';

// Real parts: the ingest (built, as a process, SQLite stores, aedes), the agent (built, as a
// process: enroll, run, outbox), mqtt.js as local sensors on the agent's own listener.

const GW = 'gw-main';
const CHILDREN = ['th-1', 'th-2', 'th-3'];
const T0 = 1_760_000_000;

describe('outpost-agent against a real ingest', () => {
  const services = useServices();
  let ingest: IngestHandle;
  let work: WorkDir;
  let dataDir: string;
  let agent: AgentProcess;
  let sensor: Sensor;

  beforeAll(async () => {
    ingest = await services.add(startIngest());
    work = await makeWorkDir('agent-int');
    dataDir = work.join('data');
  });
  afterAll(async () => {
    await sensor?.end().catch(() => undefined);
    await agent?.stop();
    await work?.cleanup();
  });

  it('enroll makes the key pair locally, keeps it 0600, and never spends a token over an identity', async () => {
    await enrollGateway(ingest, dataDir, GW, CHILDREN);
    const key = await stat(join(dataDir, 'device-key.json'));
    expect(key.mode & 0o777).toBe(0o600);
    const device = await apiOf(ingest)('GET', `/api/v1/devices/${GW}`);
    expect(device.body).toMatchObject({ id: GW, kind: 'gateway', status: 'active' });

    const created = await apiOf(ingest)('POST', '/api/v1/enrollments', {
      deviceId: 'gw-other',
      kind: 'gateway',
    });
    const again = await runCli([
      'enroll',
      '--server',
      ingest.url,
      '--token',
      created.body.token as string,
      '--data-dir',
      dataDir,
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds an identity/);
    // The token was not used: it still enrolls elsewhere.
    const elsewhere = await runCli([
      'enroll',
      '--server',
      ingest.url,
      '--token',
      created.body.token as string,
      '--data-dir',
      work.join('other'),
    ]);
    expect(elsewhere.code).toBe(0);
  });

  it('stores every reading of the local sensors exactly once, with exact counts', async () => {
    agent = await startAgent({
      dir: work.path,
      dataDir,
      overrides: { uplink: { backfillAfter: '3s' } },
    });
    sensor = await connectSensor(agent.sensorPort);
    const before = await ingestMetric(ingest, 'outpost_ingest_readings_total');
    const perChild = 300;
    for (const child of CHILDREN) {
      for (let k = 0; k < perChild; k += 50) {
        const values = Array.from({ length: 50 }, (_, i) => k + i);
        await sensor.publish(
          child,
          'seq',
          values,
          values.map((v) => T0 + v),
        );
      }
    }
    await waitFor(() => CHILDREN.every((c) => storedPoints(ingest, c).length === perChild), {
      what: 'every reading stored',
      timeoutMs: 20_000,
    });
    for (const child of CHILDREN) {
      const points = storedPoints(ingest, child);
      expect(points.map((p) => p.value)).toEqual(Array.from({ length: perChild }, (_, i) => i));
      // Sent at once, clock confirmed by the ingest's Date header: neither bf nor unsynced.
      expect(points.every((p) => p.marks === 0)).toBe(true);
    }
    // Accepted exactly once: the ingest counted each reading once.
    expect((await ingestMetric(ingest, 'outpost_ingest_readings_total')) - before).toBe(
      perChild * CHILDREN.length,
    );
    await waitFor(async () => (await agent.metric('outpost_agent_outbox_pending_records')) === 0, {
      what: 'outbox drained',
    });
    expect(await agent.metric('outpost_agent_uplink_records_acked_total')).toBe(
      perChild * CHILDREN.length,
    );
  });

  it(
    'buffers while the ingest is down, shows the backlog to operators, and stores it all once after the restart ' +
      '(a 12 s outage stands for 10 minutes: nothing in the outbox expires by age and the reconnect backoff is capped at 1 s; ' +
      'src/uplink/uplink.spec.ts runs the same outage over 10 minutes of injected time)',
    async () => {
      const api = apiOf(ingest);
      const storedBefore = storedPoints(ingest, 'th-1').length;
      await ingest.kill9();
      // Sensors keep sending during the outage: 12 s, 40 readings per second per child.
      let value = 1000;
      const publishFor = async (ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          for (const child of CHILDREN) {
            const values = Array.from({ length: 4 }, (_, i) => value + i);
            await sensor.publish(
              child,
              'seq',
              values,
              values.map((v) => T0 + v),
            );
          }
          value += 4;
          await sleep(100);
        }
      };
      await publishFor(12_000);
      await sleep(500); // the last batch leaves the batcher (maxAge 200 ms)
      const buffered = await agent.metric('outpost_agent_outbox_pending_records');
      expect(buffered).toBeGreaterThan(0);
      expect(await agent.metric('outpost_agent_uplink_connected')).toBe(0);
      // What an operator runs on the gateway meanwhile.
      const cli = await runCli(['outbox', '--config', agent.configPath, '--json']);
      expect(cli.code).toBe(0);
      const report = JSON.parse(cli.stdout) as Record<string, unknown>;
      expect(report).toMatchObject({
        agent: 'running',
        uplink: 'offline',
        etaReason: 'the uplink is offline',
        pending: { records: buffered },
      });
      expect(report.oldestAgeS).toBeGreaterThan(5);

      await ingest.restart();
      // The state published on reconnect carries the backlog (PROTOCOL.md §6).
      const seen = await waitFor(
        async () => {
          const d = await api('GET', `/api/v1/devices/${GW}`);
          const outbox = d.body.outbox as { pending: number } | null;
          return outbox !== null && outbox.pending > 0 && outbox;
        },
        { what: 'buffering visible in the registry', timeoutMs: 20_000, intervalMs: 20 },
      );
      expect(seen.pending).toBeGreaterThan(0);
      const expected = storedBefore + (value - 1000);
      await waitFor(() => CHILDREN.every((c) => storedPoints(ingest, c).length === expected), {
        what: 'backlog stored',
        timeoutMs: 30_000,
      });
      for (const child of CHILDREN) {
        const values = storedPoints(ingest, child).map((p) => p.value);
        expect(new Set(values).size).toBe(values.length);
        expect(values.slice(storedBefore)).toEqual(
          Array.from({ length: value - 1000 }, (_, i) => 1000 + i),
        );
      }
      // Records that waited longer than uplink.backfillAfter (3 s) came flagged as backfilled
      // (bf: true, PROTOCOL.md §5): at least the first 9 of the 12 s.
      const late = storedPoints(ingest, 'th-1').filter((p) => (p.value ?? 0) >= 1000);
      expect(late.filter((p) => (p.marks & 1) === 1).length).toBeGreaterThan(late.length / 2);
      expect(late[0]!.marks & 1).toBe(1);
      // ...and the registry shows the outbox empty again once drained.
      await waitFor(
        async () =>
          ((await api('GET', `/api/v1/devices/${GW}`)).body.outbox as { pending: number } | null)
            ?.pending === 0,
        { what: 'drained state reported', timeoutMs: 20_000 },
      );
      expect(outboxSnapshot(dataDir, GW).stats.pending).toBe(0);
    },
  );

  it('quarantines a batch the ingest refuses for good, with its reason, and never retries it', async () => {
    // `stranger-1` is no child of this gateway: the ingest refuses the batch (not_child).
    await sensor.publish('stranger-1', 'x', [1, 2, 3], [T0, T0 + 1, T0 + 2]);
    await waitFor(
      async () => (await agent.metric('outpost_agent_outbox_quarantined_batches')) === 1,
      {
        what: 'quarantined',
        timeoutMs: 20_000,
      },
    );
    expect(
      await agent.metric('outpost_agent_uplink_batches_rejected_total', { reason: 'not_child' }),
    ).toBe(1);
    const cli = await runCli(['outbox', '--config', agent.configPath, '--json']);
    const report = JSON.parse(cli.stdout) as {
      recentQuarantine: { reason: string; records: number }[];
    };
    expect(report.recentQuarantine[0]).toMatchObject({ reason: 'not_child', records: 3 });
    // Not retried: the number of sends stays where it is, and later readings flow.
    const sent = await agent.metric('outpost_agent_uplink_batches_sent_total');
    await sensor.publish('th-2', 'after', [7], [T0 + 5000]);
    await waitFor(() => storedPoints(ingest, 'th-2').some((p) => p.metric === 'after'), {
      what: 'later reading stored',
    });
    await sleep(1500);
    expect(await agent.metric('outpost_agent_uplink_batches_sent_total')).toBe((sent ?? 0) + 1);
    expect(storedPoints(ingest, 'stranger-1')).toEqual([]);
  });

  it('renews its device JWT before the broker would close the session, losing and repeating nothing', async () => {
    const dataDir2 = work.join('renew');
    await enrollGateway(ingest, dataDir2, 'gw-renew', ['r-1']);
    // Tokens of 3 s: renewed (a new session) every 2.4 s.
    const renewing = await startAgent({
      dir: work.path,
      dataDir: dataDir2,
      name: 'agent-renew',
      overrides: { uplink: { tokenLifetime: '3s' } },
    });
    const s2 = await connectSensor(renewing.sensorPort);
    try {
      let n = 0;
      const end = Date.now() + 8000;
      while (Date.now() < end) {
        const values = Array.from({ length: 10 }, (_, i) => n + i);
        await s2.publish(
          'r-1',
          'seq',
          values,
          values.map((v) => T0 + v),
        );
        n += 10;
        await sleep(50);
      }
      await waitFor(() => storedPoints(ingest, 'r-1').length === n, {
        what: 'all stored',
        timeoutMs: 20_000,
      });
      expect(storedPoints(ingest, 'r-1').map((p) => p.value)).toEqual(
        Array.from({ length: n }, (_, i) => i),
      );
      expect(
        await renewing.metric('outpost_agent_uplink_connects_total', { result: 'accepted' }),
      ).toBeGreaterThanOrEqual(3);
      expect(
        await renewing.metric('outpost_agent_uplink_connects_total', { result: 'connack_4' }),
      ).toBeUndefined();
    } finally {
      await s2.end();
      await renewing.stop();
    }
  });

  it('sends over HTTP (POST /api/v1/telemetry) while MQTT is unreachable', async () => {
    const dataDir3 = work.join('http');
    await enrollGateway(ingest, dataDir3, 'gw-http', ['h-1']);
    const viaHttp = await startAgent({
      dir: work.path,
      dataDir: dataDir3,
      name: 'agent-http',
      overrides: {
        uplink: {
          mqtt: `mqtt://127.0.0.1:${await freePort()}`,
          http: { fallback: true, after: '1s' },
        },
      },
    });
    const s3 = await connectSensor(viaHttp.sensorPort);
    try {
      const values = Array.from({ length: 120 }, (_, i) => i);
      await s3.publish(
        'h-1',
        'seq',
        values,
        values.map((v) => T0 + v),
      );
      await waitFor(() => storedPoints(ingest, 'h-1').length === 120, {
        what: 'stored over HTTP',
        timeoutMs: 20_000,
      });
      expect(
        await viaHttp.metric('outpost_agent_uplink_batches_acked_total', { transport: 'http' }),
      ).toBeGreaterThan(0);
      expect(await viaHttp.metric('outpost_agent_uplink_connected')).toBe(0);
    } finally {
      await s3.end();
      await viaHttp.stop();
    }
  });
});
