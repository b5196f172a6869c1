import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTcpBalancer, type TcpBalancer } from './tcp-balancer.js';

/** A server that answers each connection with its name and keeps it open. */
async function named(name: string): Promise<{ server: Server; port: number }> {
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    socket.write(name);
  });
  sockets.set(server, open);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString());
    });
    socket.once('close', () => resolve(''));
    socket.once('error', reject);
  });
}

const sockets = new Map<Server, Set<Socket>>();

/** Stops listening and drops its open connections, as a crashed backend would. */
const closeServer = (server: Server) =>
  new Promise<void>((r) => {
    server.close(() => r());
    for (const s of sockets.get(server) ?? []) s.destroy();
  });

describe('startTcpBalancer', () => {
  let balancer: TcpBalancer | undefined;
  const servers: Server[] = [];
  afterEach(async () => {
    await balancer?.stop();
    for (const s of servers.splice(0)) if (s.listening) await closeServer(s);
  });

  it('spreads connections round-robin and skips a backend that is down', async () => {
    const a = await named('a');
    const b = await named('b');
    servers.push(a.server, b.server);
    balancer = await startTcpBalancer({ backends: [{ port: a.port }, { port: b.port }] });
    const first = await Promise.all([1, 2, 3, 4].map(() => ask(balancer!.port)));
    expect(first.sort()).toEqual(['a', 'a', 'b', 'b']);

    await closeServer(b.server);
    const after = [];
    for (let i = 0; i < 4; i++) after.push(await ask(balancer.port));
    expect(after).toEqual(['a', 'a', 'a', 'a']);
  });

  it('closes the client side when its backend goes away, and refuses when none is left', async () => {
    const a = await named('a');
    servers.push(a.server);
    balancer = await startTcpBalancer({ backends: [{ port: a.port }] });
    const socket = connect({ host: '127.0.0.1', port: balancer.port });
    socket.on('error', () => {});
    await new Promise((r) => socket.once('data', r));
    expect(balancer.connections().get(`127.0.0.1:${a.port}`)).toBe(1);
    const closed = new Promise((r) => socket.once('close', r));
    await closeServer(a.server);
    await closed;
    expect(await ask(balancer.port)).toBe('');
  });
});
