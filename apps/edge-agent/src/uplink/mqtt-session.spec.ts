import { createServer, type Server } from 'node:net';
import { generateKeyPair } from '@outpost/signing/keys';
import { importSigningKey } from '@outpost/signing/sign';
import { Aedes } from 'aedes';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentMetrics } from '../metrics/agent-metrics.js';
import { DeviceTokens } from './device-token.js';
import { MqttSession } from './mqtt-session.js';

// Real parts: mqtt.js against an in-process aedes broker over TCP that refuses one child's
// commands topic (SUBACK 0x80), as the ingest does for a device that is not a child.

const GW = 'gw-1';
const topic = (id: string) => `v1/devices/${id}/commands`;

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

async function broker(
  refused: ReadonlySet<string>,
): Promise<{ url: string; server: Server; aedes: Aedes }> {
  const aedes = await Aedes.createBroker();
  aedes.authorizeSubscribe = (_client, sub, done) =>
    done(null, refused.has(sub.topic) ? null : sub);
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  cleanup = async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  };
  return { url: `mqtt://127.0.0.1:${port}`, server, aedes };
}

async function gatewayTokens(): Promise<DeviceTokens> {
  const key = await importSigningKey((await generateKeyPair()).privateJwk);
  return new DeviceTokens({ key, deviceId: GW, audience: 'outpost', now: Date.now });
}

describe('MqttSession', () => {
  it('reports which child subscriptions the broker granted and which it refused', async () => {
    const { url } = await broker(new Set([topic('stranger-1')]));
    const answered: ReadonlyMap<string, boolean>[] = [];
    const session = new MqttSession({
      url,
      deviceId: GW,
      tokens: await gatewayTokens(),
      subscriptions: [topic(GW)],
      optionalSubscriptions: [topic('th-1'), topic('stranger-1'), topic('th-2')],
      onOptionalSubscribed: (answers) => answered.push(answers),
      random: () => 0.5,
      monotonic: () => performance.now(),
      logger: pino({ level: 'silent' }),
      metrics: new AgentMetrics({ defaultMetrics: false }),
      onMessage: () => undefined,
      onUp: () => undefined,
      onDown: () => undefined,
    });
    session.start();
    try {
      await expect.poll(() => answered.length, { timeout: 5_000 }).toBe(1);
      expect([...answered[0]!]).toEqual([
        [topic('th-1'), true],
        [topic('stranger-1'), false],
        [topic('th-2'), true],
      ]);
      // A child's state may be published under its id only when its topic was granted.
      expect(session.granted(topic('th-1'))).toBe(true);
      expect(session.granted(topic('stranger-1'))).toBe(false);
      expect(session.up).toBe(true);
    } finally {
      await session.stop();
    }
  });

  it('backs off further when the broker accepts and closes at once, over again once stable', async () => {
    const { url, aedes } = await broker(new Set());
    // The first connections are accepted (CONNACK 0) and closed straight away, as the ingest
    // does after too many refusals; the one after those stays.
    let closeNext = 4;
    let current: { close(): void } | undefined;
    aedes.on('clientReady', (client) => {
      current = client;
      if (closeNext > 0) {
        closeNext--;
        client.close();
      }
    });
    let now = 0;
    const delays: number[] = [];
    const logger = pino(
      { level: 'debug' },
      {
        write(line: string) {
          const entry = JSON.parse(line) as { msg: string; delayMs?: number };
          if (entry.msg === 'reconnecting after backoff') delays.push(entry.delayMs!);
        },
      },
    );
    let ups = 0;
    const session = new MqttSession({
      url,
      deviceId: GW,
      tokens: await gatewayTokens(),
      subscriptions: [topic(GW)],
      // The top of the jitter range: each delay is the cap of its attempt.
      random: () => 1,
      monotonic: () => now,
      backoff: { initialMs: 20, maxMs: 5000 },
      stableAfterMs: 30_000,
      logger,
      metrics: new AgentMetrics({ defaultMetrics: false }),
      onMessage: () => undefined,
      onUp: () => ups++,
      onDown: () => undefined,
    });
    session.start();
    try {
      await expect.poll(() => ups, { timeout: 5_000 }).toBe(1);
      // Each accepted-then-closed connection was a failed attempt: no reset on CONNACK.
      expect(delays).toEqual([20, 40, 80, 160]);
      // Up past the threshold, then dropped: the next reconnect is at the minimum again.
      now += 30_000;
      current!.close();
      await expect.poll(() => ups, { timeout: 5_000 }).toBe(2);
      expect(delays).toEqual([20, 40, 80, 160, 20]);
      // Dropped again before the threshold: the backoff grows from there.
      now += 29_999;
      current!.close();
      await expect.poll(() => ups, { timeout: 5_000 }).toBe(3);
      expect(delays).toEqual([20, 40, 80, 160, 20, 40]);
    } finally {
      await session.stop();
    }
  });
});
