import { connect } from 'node:net';
import { findBinary } from './binaries.js';
import { LOOPBACK } from './ports.js';
import { ManagedProcess, waitFor } from './process.js';
import {
  type PortServiceHandle,
  portServiceHandle,
  ServiceRunner,
  type StartOptions,
} from './service.js';

export interface RedisOptions extends StartOptions {
  /** Extra `redis-server` arguments, e.g. `['--appendonly', 'yes']` (later ones win). */
  args?: readonly string[];
}

/** `url` is `redis://127.0.0.1:<port>`. */
export type RedisHandle = PortServiceHandle;

/** One RESP round trip: sends `PING`, resolves with the first reply line. */
function ping(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: LOOPBACK, port });
    let reply = '';
    socket.setTimeout(timeoutMs);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      const end = reply.indexOf('\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(reply.slice(0, end));
      }
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error('PING timed out'));
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
  });
}

/** A throwaway redis-server without persistence on 127.0.0.1. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisHandle> {
  const binary = findBinary('redis-server', options.lookup);
  const runner = await ServiceRunner.start(
    {
      name: 'redis',
      spawn: ({ port, dir, logPath }) =>
        ManagedProcess.start({
          name: 'redis',
          command: binary,
          args: [
            '--bind',
            LOOPBACK,
            '--port',
            String(port),
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            dir,
            '--daemonize',
            'no',
            '--logfile',
            '',
            ...(options.args ?? []),
          ],
          cwd: dir,
          logPath,
        }),
      ready: (proc, { port, readyTimeoutMs }) =>
        waitFor(async () => (await ping(port, 2_000)) === '+PONG', {
          what: `redis PING on 127.0.0.1:${port}`,
          timeoutMs: readyTimeoutMs,
          process: proc,
        }).then(() => undefined),
    },
    options,
  );
  return portServiceHandle(runner, () => `redis://${LOOPBACK}:${runner.port}`);
}
