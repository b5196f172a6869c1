import { type Command, commandSchema } from '@outpost/protocol/commands';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { verifyCommand } from '@outpost/signing/command';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import type { KeyPair, PublicJwk } from '@outpost/signing/keys';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type ApiClient, enrollWithReply } from './ingest-app.js';

/**
 * Devices for the cluster drills: enrolled through the real API, connected with mqtt.js and a
 * real device JWT, verifying each command with the service JWKS from their enrollment.
 */

export const systemClock = { now: () => Date.now() };

export interface ClusterDevice {
  id: string;
  pair: KeyPair;
  jwks: { keys: PublicJwk[] };
}

export async function enroll(api: ApiClient, id: string): Promise<ClusterDevice> {
  const { pair, reply } = await enrollWithReply({ api, clock: systemClock }, id);
  return { id, pair, jwks: reply.jwks as { keys: PublicJwk[] } };
}

/** Connects `device` to `url` (a replica, or the balancer); resolves on CONNACK. */
export async function connectDevice(
  url: string,
  device: Pick<ClusterDevice, 'id' | 'pair'>,
  options: IClientOptions = {},
): Promise<MqttClient> {
  const { token } = await signDeviceJwt(device.pair.privateJwk, { deviceId: device.id });
  return mqtt.connectAsync(url, {
    protocolVersion: 4,
    clientId: device.id,
    username: device.id,
    password: token,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    clean: true,
    ...options,
  });
}

/** Collects the verified commands a device receives on its commands topic. */
export function collectCommands(client: MqttClient, device: ClusterDevice): Command[] {
  const received: Command[] = [];
  client.on('message', (topic, payload) => {
    if (topic !== topics.commands(device.id)) return;
    void verifyCommand(payload.toString('utf8'), {
      keys: device.jwks,
      deviceId: device.id,
      schema: commandSchema,
    }).then(
      (verified) => received.push(verified.payload),
      () => undefined,
    );
  });
  return received;
}

/**
 * `n` signed batches of `size` readings of `metric`, with distinct seq ranges, one second
 * apart, the first `startAgoS` seconds ago; values are the reading's index.
 */
export async function signedBatches(
  pair: KeyPair,
  metric: string,
  n: number,
  size: number,
  boot: string,
  startAgoS = 3600,
): Promise<string[]> {
  const t0 = Math.floor(Date.now() / 1000) - startAgoS;
  const out: string[] = [];
  for (let b = 0; b < n; b++) {
    const records = Array.from({ length: size }, (_, i) => ({
      ...(i === 0 ? { bt: t0 + b * size } : {}),
      n: metric,
      v: b * size + i,
      t: i,
    }));
    out.push(
      await signBatch(pair.privateJwk, {
        v: 1,
        boot,
        seq: [b * size + 1, (b + 1) * size],
        records,
      }),
    );
  }
  return out;
}

/**
 * Publishes at QoS 1 and resolves on the PUBACK; when none comes in time (the replica died,
 * the client is reconnecting) the batch is sent again, as a device's outbox does.
 */
export async function publishUntilAcked(
  client: MqttClient,
  topic: string,
  payload: string,
  attemptMs = 10_000,
  deadlineMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const acked = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), attemptMs);
      client.publish(topic, payload, { qos: 1 }, (err) => {
        clearTimeout(timer);
        resolve(!err);
      });
    });
    if (acked) return;
    if (Date.now() > deadline) throw new Error(`no PUBACK on ${topic} before the deadline`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/** An open `GET /api/v1/stream` that collects the events it receives. */
export interface SseStream {
  events: SseEvent[];
  close(): void;
}

export async function openStream(url: string, token: string, query: string): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(`${url}/api/v1/stream?${query}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    signal: abort.signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`stream: HTTP ${res.status}`);
  const events: SseEvent[] = [];
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted
    }
  })();
  return { events, close: () => abort.abort() };
}
