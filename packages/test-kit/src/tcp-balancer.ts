import { connect, createServer, type Server, type Socket } from 'node:net';
import { LOOPBACK } from './ports.js';

export interface Backend {
  host?: string;
  port: number;
}

export interface TcpBalancerOptions {
  backends: readonly Backend[];
  /** A fixed port; by default a free one. */
  port?: number;
  /** How long a backend that refused a connection is skipped; defaults to 1 s. */
  deadForMs?: number;
  /** How long to wait for a backend to accept; defaults to 2 s. */
  connectTimeoutMs?: number;
}

export interface TcpBalancer {
  readonly host: string;
  readonly port: number;
  /** `<scheme>://127.0.0.1:<port>`, e.g. `url('mqtt')`. */
  url(scheme: string): string;
  /** Open client connections per backend, keyed `host:port`. */
  connections(): Map<string, number>;
  /** Replaces the backend list (e.g. after a replica moved to another port). */
  setBackends(backends: readonly Backend[]): void;
  /** Closes the listener and every proxied connection. Idempotent. */
  stop(): Promise<void>;
}

interface Entry {
  host: string;
  port: number;
  key: string;
  deadUntil: number;
  open: Set<Socket>;
}

/**
 * A round-robin TCP load balancer on 127.0.0.1, as a cluster's front door in tests: each
 * client connection is piped to the next backend that accepts it; a backend that refuses is
 * skipped for a while. When either side closes, so does the other, as with a real balancer
 * whose backend died.
 */
export async function startTcpBalancer(options: TcpBalancerOptions): Promise<TcpBalancer> {
  const deadForMs = options.deadForMs ?? 1000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  let entries: Entry[] = [];
  let next = 0;
  const clients = new Set<Socket>();

  const setBackends = (backends: readonly Backend[]) => {
    entries = backends.map((b) => {
      const host = b.host ?? LOOPBACK;
      return { host, port: b.port, key: `${host}:${b.port}`, deadUntil: 0, open: new Set() };
    });
    next = 0;
  };
  setBackends(options.backends);

  /** Backends in round-robin order from the next one, live ones first. */
  const candidates = (): Entry[] => {
    const now = Date.now();
    const n = entries.length;
    const order = Array.from({ length: n }, (_, i) => entries[(next + i) % n]!);
    next = (next + 1) % Math.max(n, 1);
    return [...order.filter((e) => e.deadUntil <= now), ...order.filter((e) => e.deadUntil > now)];
  };

  const dial = (entry: Entry): Promise<Socket | undefined> =>
    new Promise((resolve) => {
      const upstream = connect({ host: entry.host, port: entry.port });
      const timer = setTimeout(() => fail(), connectTimeoutMs);
      const fail = () => {
        clearTimeout(timer);
        upstream.destroy();
        entry.deadUntil = Date.now() + deadForMs;
        resolve(undefined);
      };
      upstream.once('error', fail);
      upstream.once('connect', () => {
        clearTimeout(timer);
        upstream.off('error', fail);
        resolve(upstream);
      });
    });

  const onClient = async (client: Socket) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => client.destroy());
    // Hold what the client sends until a backend is chosen.
    client.pause();
    for (const entry of candidates()) {
      const upstream = await dial(entry);
      if (client.destroyed) {
        upstream?.destroy();
        return;
      }
      if (!upstream) continue;
      entry.open.add(upstream);
      upstream.on('close', () => {
        entry.open.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      return;
    }
    client.destroy();
  };

  const server: Server = createServer((socket) => void onClient(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, LOOPBACK, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as { port: number }).port;
  let stopped: Promise<void> | undefined;

  return {
    host: LOOPBACK,
    port,
    url: (scheme) => `${scheme}://${LOOPBACK}:${port}`,
    connections: () => new Map(entries.map((e) => [e.key, e.open.size])),
    setBackends,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const client of clients) client.destroy();
        for (const entry of entries) for (const s of entry.open) s.destroy();
      });
      return stopped;
    },
  };
}
