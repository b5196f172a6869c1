import { connect, type Socket } from 'node:net';
import { serveParent } from './child.js';
import type { LatencySummary } from './load-messages.js';

/**
 * Holds many authenticated MQTT sessions open with as little client-side cost as possible:
 * a bare socket per session, one MQTT 3.1.1 CONNECT (§3.1) with the device JWT as password,
 * the CONNACK read (§3.2), nothing else. Source addresses rotate over 127.0.0.x so no single
 * source address runs out of ephemeral ports.
 */

export type ToSessions =
  | {
      type: 'open';
      port: number;
      devices: { id: string; password: string }[];
      /** CONNECTs in flight at once. */
      concurrency: number;
      sourceAddresses: string[];
      keepaliveS: number;
    }
  | { type: 'count' }
  | { type: 'close' }
  | { type: 'stop' };

export type FromSessions =
  | {
      type: 'opened';
      accepted: number;
      refused: Record<string, number>;
      failed: string[];
      seconds: number;
      connackMs: LatencySummary;
      open: number;
    }
  | { type: 'counted'; open: number; dropped: number }
  | { type: 'closed' };

const sockets = new Set<Socket>();
let dropped = 0;
let nextSource = 0;

function utf8Field(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

/** [MQTT-3.1] CONNECT: clean session, user name and password flags, keep alive. */
export function connectPacket(
  clientId: string,
  username: string,
  password: string,
  keepaliveS: number,
): Buffer {
  const variable = Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0xc2, 0, 0]);
  variable.writeUInt16BE(keepaliveS, 8);
  const body = Buffer.concat([
    variable,
    utf8Field(clientId),
    utf8Field(username),
    utf8Field(password),
  ]);
  // [MQTT-2.2.3] Remaining Length as a variable-length integer.
  const length: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    length.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([0x10, ...length]), body]);
}

/** Resolves with the CONNACK return code (0 = accepted) or rejects on a socket failure. */
function openSession(
  port: number,
  localAddress: string,
  packet: Buffer,
): Promise<{ code: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no CONNACK within 60 s'));
    }, 60_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', fail);
    socket.once('connect', () => socket.write(packet));
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 4) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', fail);
      // [MQTT-3.2.2.3] byte 4 is the return code.
      if (received[0] !== 0x20) {
        socket.destroy();
        reject(new Error(`expected CONNACK, got packet type ${received[0]! >> 4}`));
        return;
      }
      resolve({ code: received[3]!, socket });
    };
    socket.on('data', onData);
    socket.once('close', () => fail(new Error('closed before CONNACK')));
  });
}

async function open(m: Extract<ToSessions, { type: 'open' }>): Promise<FromSessions> {
  const started = performance.now();
  const latencies: number[] = [];
  const refused: Record<string, number> = {};
  const failed: string[] = [];
  let accepted = 0;
  let next = 0;
  const worker = async () => {
    while (next < m.devices.length) {
      const device = m.devices[next++]!;
      const source = m.sourceAddresses[nextSource++ % m.sourceAddresses.length]!;
      const packet = connectPacket(device.id, device.id, device.password, m.keepaliveS);
      const t = performance.now();
      try {
        const { code, socket } = await openSession(m.port, source, packet);
        latencies.push(performance.now() - t);
        if (code !== 0) {
          refused[code] = (refused[code] ?? 0) + 1;
          socket.destroy();
          continue;
        }
        accepted++;
        sockets.add(socket);
        socket.on('error', () => {});
        socket.once('close', () => {
          if (sockets.delete(socket)) dropped++;
        });
      } catch (err) {
        if (failed.length < 20) failed.push(`${device.id}: ${(err as Error).message}`);
        else failed.push('');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(m.concurrency, m.devices.length) }, worker));
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return {
    type: 'opened',
    accepted,
    refused,
    failed: failed
      .filter((f) => f !== '')
      .concat(failed.length > 20 ? [`… ${failed.length - 20} more`] : []),
    seconds: (performance.now() - started) / 1000,
    connackMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.at(-1) ?? 0 },
    open: sockets.size,
  };
}

async function closeAll(): Promise<void> {
  const all = [...sockets];
  sockets.clear();
  await Promise.all(
    all.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.once('close', () => resolve());
          // [MQTT-3.14] DISCONNECT, then close.
          s.end(Buffer.from([0xe0, 0x00]));
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 5_000).unref();
        }),
    ),
  );
}

serveParent<ToSessions, FromSessions>(async (m, reply) => {
  switch (m.type) {
    case 'open':
      reply(await open(m));
      return;
    case 'count':
      reply({ type: 'counted', open: sockets.size, dropped });
      return;
    case 'close':
      await closeAll();
      reply({ type: 'closed' });
      return;
    case 'stop':
      for (const s of sockets) s.destroy();
      process.exit(0);
  }
});
