import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { topics } from '@outpost/protocol/topics';
import { signCommand } from '@outpost/signing/command';
import { toJwks } from '@outpost/signing/jwks';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { waitFor } from '@outpost/test-kit/process';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Agent } from '../src/agent.js';
import { parseConfig } from '../src/config.js';
import { writeIdentity } from '../src/identity/identity-store.js';
import { sumMetric } from './support/agent-harness.js';

// Real parts: the agent in this process with its SQLite outbox and mqtt.js uplink; an aedes
// broker on a free port standing in for the ingest's (the ingest has no API to send
// `config.desired` yet), commands signed with a service key whose JWKS the identity holds.

const GW = 'gw-remote';

describe('remote configuration (config.desired, PROTOCOL.md §8)', () => {
  let work: WorkDir;
  let service: KeyPair;
  let broker: Aedes;
  let server: Server;
  let port: number;
  let agent: Agent | undefined;
  const states: Record<string, unknown>[] = [];
  const events: Record<string, unknown>[] = [];

  const start = async () => {
    const config = parseConfig(
      stringify({
        dataDir: work.join('data'),
        sources: [],
        metrics: { listen: false },
        outbox: { maxBytes: '64MiB', whenFull: 'drop-oldest' },
        uplink: { backoff: { initial: '100ms', max: '500ms' }, http: { fallback: false } },
        clock: { timesyncd: false, ingestDate: false },
      }),
    );
    agent = await Agent.start({ config, logger: pino({ level: 'silent' }) });
    await waitFor(() => agent!.sessionUp, { what: 'connected' });
  };

  const command = async (body: Record<string, unknown>, key: KeyPair = service) => {
    const jws = await signCommand(key.privateJwk, {
      v: 1,
      id: randomUUID(),
      exp: Math.floor(Date.now() / 1000) + 600,
      device: GW,
      ...body,
    });
    await send(jws);
    return jws;
  };
  const send = (jws: string) =>
    new Promise<void>((resolve, reject) =>
      broker.publish(
        {
          cmd: 'publish',
          topic: topics.commands(GW),
          payload: Buffer.from(jws),
          qos: 1,
          retain: false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  const commandsCounted = async (outcome: string) =>
    sumMetric(await agent!.metrics.registry.metrics(), 'outpost_agent_commands_total', {
      outcome,
    }) ?? 0;

  beforeAll(async () => {
    work = await makeWorkDir('remote-config');
    service = await generateKeyPair();
    const gateway = await generateKeyPair();
    broker = await Aedes.createBroker();
    broker.on('publish', (packet) => {
      if (packet.topic === topics.state(GW)) states.push(JSON.parse(packet.payload.toString()));
      if (packet.topic === topics.events(GW)) events.push(JSON.parse(packet.payload.toString()));
    });
    server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
    await writeIdentity(
      work.join('data'),
      {
        v: 1,
        deviceId: GW,
        kind: 'gateway',
        gateway: null,
        kid: gateway.kid,
        server: 'http://127.0.0.1:9',
        mqtt: { host: '127.0.0.1', port, tlsPort: null },
        audience: 'outpost',
        jwks: (await toJwks([service.publicJwk])) as unknown as { keys: Record<string, unknown>[] },
        releaseKeys: [],
        enrolledAt: new Date().toISOString(),
      },
      gateway.privateJwk,
    );
    await start();
  });
  afterAll(async () => {
    await agent?.stop();
    await new Promise<void>((r) => broker?.close(() => r()));
    server?.close();
    await work?.cleanup();
  });

  it('applies a signed config.desired, keeps it on disk and reports its version', async () => {
    expect(agent!.configVersion).toBe(0);
    await command({
      type: 'config.desired',
      version: 3,
      config: {
        batch: { maxRecords: 10, maxAge: '1s' },
        outbox: { maxBytes: '1MiB', whenFull: 'reject-new' },
        state: { every: '10s' },
        pipeline: [{ range: { metric: 'temperature', min: -40, max: 125 } }],
      },
    });
    await waitFor(() => states.some((s) => s.config_version === 3), {
      what: 'state with version 3',
    });
    expect(agent!.configVersion).toBe(3);
    expect(agent!.outbox.stats()).toMatchObject({ maxBytes: 1024 * 1024, whenFull: 'reject-new' });
    expect(agent!.config.batch.maxRecords).toBe(10);
    expect(agent!.config.state.every).toBe(10_000);
    expect((await stat(join(work.join('data'), 'remote-config.json'))).isFile()).toBe(true);
  });

  it('ignores commands whose signature, target, expiry or id do not check out', async () => {
    const refused = await commandsCounted('refused');
    const other = await generateKeyPair();
    await command({ type: 'config.desired', version: 9, config: {} }, other);
    await command({ type: 'config.desired', version: 9, config: {}, device: 'gw-other' });
    await command({ type: 'config.desired', version: 9, config: {}, exp: 1000 });
    const replayed = await command({ type: 'ping' });
    await send(replayed);
    await waitFor(async () => (await commandsCounted('refused')) === refused + 4, {
      what: 'four refusals',
    });
    expect(agent!.configVersion).toBe(3);
  });

  it('refuses an invalid configuration, keeps the one in force and says why in an event', async () => {
    await command({
      type: 'config.desired',
      version: 4,
      config: { outbox: { whenFull: 'explode' } },
    });
    await waitFor(() => events.length > 0, { what: 'log event' });
    expect(events[0]).toMatchObject({ type: 'log', level: 'error' });
    expect(String(events[0]!.message)).toMatch(/version 4 refused: outbox.whenFull/);
    expect(agent!.configVersion).toBe(3);
    expect(agent!.outbox.stats().whenFull).toBe('reject-new');
    // An older version changes nothing either.
    await command({
      type: 'config.desired',
      version: 2,
      config: { outbox: { whenFull: 'drop-oldest' } },
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(agent!.outbox.stats().whenFull).toBe('reject-new');
  });

  it('starts with the remote configuration it accepted before', async () => {
    await agent!.stop();
    await start();
    expect(agent!.configVersion).toBe(3);
    expect(agent!.outbox.stats()).toMatchObject({ maxBytes: 1024 * 1024, whenFull: 'reject-new' });
    await waitFor(() => states.at(-1)?.config_version === 3, { what: 'reported after restart' });
  });
});
