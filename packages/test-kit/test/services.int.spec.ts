import { existsSync } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findBinary, MissingBinaryError } from '../src/binaries.js';
import { startInfluxDb1 } from '../src/influxdb1.js';
import { startMosquitto } from '../src/mosquitto.js';
import { freePort } from '../src/ports.js';
import { startPostgres } from '../src/postgres.js';
import { ManagedProcess, ReadinessError, runCommand, waitFor } from '../src/process.js';
import { startRedis } from '../src/redis.js';
import { ptyPair } from '../src/socat-pty.js';
import { startVictoriaMetrics } from '../src/victoria-metrics.js';
import { useServices } from '../src/vitest.js';
import { makeWorkDir } from '../src/workdir.js';

const startTimes: Record<string, number> = {};

async function timed<T>(name: string, start: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const result = await start();
  startTimes[name] = Math.round(performance.now() - t0);
  return result;
}

afterAll(() => {
  const lines = Object.entries(startTimes).map(([name, ms]) => `  ${name.padEnd(28)} ${ms} ms`);
  process.stdout.write(`service start times:\n${lines.join('\n')}\n`);
});

/** Sends a raw RESP `PING` and returns the first reply line. */
function redisPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.once('data', (chunk) => {
      socket.destroy();
      resolve(chunk.toString().split('\r\n')[0] ?? '');
    });
    socket.once('error', reject);
  });
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('redis', () => {
  const services = useServices();

  it('answers PING on its URL, survives restart and a crash, and cleans up on stop', async () => {
    const redis = await services.add(timed('redis', () => startRedis()));
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    expect(await redisPing(redis.port)).toBe('+PONG');

    const firstPid = redis.process.pid;
    await timed('redis (restart)', () => redis.restart());
    expect(redis.process.pid).not.toBe(firstPid);
    expect(await redisPing(redis.port)).toBe('+PONG');

    await redis.kill9();
    expect(redis.process.exitStatus?.signal).toBe('SIGKILL');
    expect(await refusesConnections(redis.port)).toBe(true);
    await redis.restart();
    expect(await redisPing(redis.port)).toBe('+PONG');

    await redis.stop();
    await redis.stop(); // idempotent
    expect(await refusesConnections(redis.port)).toBe(true);
    expect(existsSync(redis.workDir)).toBe(false);
  });

  it('keeps the work dir and log when asked to', async () => {
    const redis = await startRedis();
    await redis.stop({ keepLogs: true });
    expect(await readFile(redis.logPath, 'utf8')).toContain('Ready to accept connections');
    await rm(redis.workDir, { recursive: true });
  });

  it('fails fast with the log tail and path when its port is taken', async () => {
    const blocker: Server = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const err = await startRedis({ port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReadinessError);
      const message = (err as ReadinessError).message;
      expect(message).toMatch(/redis exited with code 1 while waiting for redis PING/);
      expect(message).toContain('Address already in use');
      const logPath = (err as ReadinessError).logPath!;
      expect(message).toContain(logPath);
      await rm(dirname(logPath), { recursive: true }); // kept for the post-mortem
    } finally {
      blocker.close();
    }
  });

  it('names the setup command and Debian package when the binary is missing', async () => {
    const err = await startRedis({ lookup: { path: '/nonexistent', searchDirs: [] } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MissingBinaryError);
    expect((err as Error).message).toBe(
      'redis-server not found: run `npm run setup` (installs Debian package redis-server)',
    );
  });
});

describe('postgres', () => {
  const services = useServices();

  it('answers psql on 127.0.0.1 and creates databases', async () => {
    const pg = await services.add(timed('postgres (initdb)', () => startPostgres()));
    expect(pg.url).toBe(`postgres://postgres@127.0.0.1:${pg.port}/postgres`);
    const psql = findBinary('psql');
    const select = await runCommand(psql, [
      ...['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-X', '-At'],
      ...['-c', 'select 1'],
    ]);
    expect(select.stdout.trim()).toBe('1');

    const url = await pg.createDatabase('outpost test');
    expect(url).toBe(`postgres://postgres@127.0.0.1:${pg.port}/outpost%20test`);
    expect((await pg.sql('select current_database()', 'outpost test')).trim()).toBe('outpost test');
  });

  it('starts a second server from the cached template and recovers from kill -9', async () => {
    const pg = await services.add(timed('postgres (template copy)', () => startPostgres()));
    await pg.sql('create table t (v int); insert into t values (42)');
    await pg.kill9();
    await timed('postgres (restart after kill -9)', () => pg.restart());
    expect((await pg.sql('select v from t')).trim()).toBe('42');
    await pg.stop();
    expect(await refusesConnections(pg.port)).toBe(true);
  });
});

describe('victoria-metrics', () => {
  const services = useServices();

  it('stores an InfluxDB line-protocol write, old timestamps included, and exports it', async () => {
    const vm = await services.add(timed('victoria-metrics', () => startVictoriaMetrics()));
    const old = Date.UTC(2001, 0, 1); // outside the default one-month retention
    const now = Date.now();
    const body = [
      `temperature,device=d-1 celsius=21.5 ${old}000000`,
      `temperature,device=d-1 celsius=22.5 ${now}000000`,
    ].join('\n');
    const res = await fetch(`${vm.url}/write`, { method: 'POST', body });
    expect(res.status).toBe(204);
    await vm.flush();
    const series = await vm.exportSeries('{__name__="temperature_celsius"}');
    expect(series).toEqual([
      {
        metric: { __name__: 'temperature_celsius', device: 'd-1' },
        values: [21.5, 22.5],
        timestamps: [old, now],
      },
    ]);
  });
});

describe('influxdb1', () => {
  const services = useServices();

  it('writes a line and reads it back with InfluxQL', async () => {
    const influx = await services.add(timed('influxdb1', () => startInfluxDb1()));
    await influx.createDatabase('outpost');
    const write = await fetch(`${influx.url}/write?db=outpost&precision=ms`, {
      method: 'POST',
      body: 'temperature,device=d-1 celsius=21.5 1700000000000',
    });
    expect(write.status).toBe(204);
    const answer = await influx.query('SELECT celsius, device FROM temperature', 'outpost');
    expect(answer.results[0]?.series?.[0]).toEqual({
      name: 'temperature',
      columns: ['time', 'celsius', 'device'],
      values: [['2023-11-14T22:13:20Z', 21.5, 'd-1']],
    });
  });

  it('runs two isolated instances side by side', async () => {
    const [a, b] = await Promise.all([
      services.add(startInfluxDb1()),
      services.add(startInfluxDb1()),
    ]);
    expect(a.port).not.toBe(b.port);
    await a.createDatabase('only_in_a');
    await a.write('only_in_a', 'm v=1 1', 's');
    const names = async (h: typeof a) =>
      ((await h.query('SHOW DATABASES')).results[0]?.series?.[0]?.values ?? []).flat();
    expect(await names(a)).toContain('only_in_a');
    expect(await names(b)).not.toContain('only_in_a');
  });
});

describe('mosquitto', () => {
  const services = useServices();

  it('relays a message from mosquitto_pub to mosquitto_sub', async () => {
    const broker = await services.add(timed('mosquitto', () => startMosquitto()));
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const work = await makeWorkDir('mosquitto-clients');
    const common = ['-h', '127.0.0.1', '-p', String(broker.port), '-t', 'outpost/test'];
    const sub = ManagedProcess.start({
      name: 'mosquitto_sub',
      command: findBinary('mosquitto_sub'),
      args: [...common, '-C', '1', '-q', '1'],
      logPath: work.join('sub.log'),
    });
    const pub = findBinary('mosquitto_pub');
    try {
      // mosquitto_sub's stdout is block-buffered into the log, so "subscribed" cannot be seen:
      // publish until it has received one message and exited.
      await waitFor(
        async () => {
          await runCommand(pub, [...common, '-q', '1', '-m', 'hello 42']);
          return !sub.running;
        },
        { what: 'mosquitto_sub to receive a message', intervalMs: 100, process: undefined },
      );
      expect(await sub.waitForExit(10_000)).toEqual({ code: 0, signal: null });
      expect(sub.log()).toContain('hello 42');
    } finally {
      await sub.stop();
      await work.cleanup();
    }
  });
});

describe('ptyPair', () => {
  const services = useServices();

  async function readOnce(path: string, write: () => Promise<void>): Promise<string> {
    const handle = await open(path, 'r+');
    try {
      const buffer = Buffer.alloc(64);
      const read = handle.read(buffer, 0, buffer.length, null);
      await write();
      const { bytesRead } = await read;
      return buffer.subarray(0, bytesRead).toString();
    } finally {
      await handle.close();
    }
  }

  async function writeTo(path: string, text: string): Promise<void> {
    const handle = await open(path, 'r+');
    try {
      await handle.write(text);
    } finally {
      await handle.close();
    }
  }

  it('carries bytes both ways, unplugs and replugs under the same names', async () => {
    const pty = await services.add(timed('ptyPair (socat)', () => ptyPair()));
    expect(await readOnce(pty.appPath, () => writeTo(pty.devicePath, 'T=21.5\n'))).toBe('T=21.5\n');
    expect(await readOnce(pty.devicePath, () => writeTo(pty.appPath, 'ping\n'))).toBe('ping\n');

    const app = await open(pty.appPath, 'r+');
    try {
      // A hung-up pty reads EIO, or end-of-file when the hangup wins the race.
      const pending = app.read(Buffer.alloc(16), 0, 16, null).then(
        ({ bytesRead }) => (bytesRead === 0 ? 'EOF' : 'data'),
        (err: NodeJS.ErrnoException) => err.code,
      );
      await pty.unplug();
      expect(pty.plugged).toBe(false);
      expect(['EIO', 'EOF']).toContain(await pending);
    } finally {
      await app.close();
    }
    expect(existsSync(pty.appPath)).toBe(false);
    expect(existsSync(pty.devicePath)).toBe(false);

    await timed('ptyPair (replug)', () => pty.replug());
    expect(pty.plugged).toBe(true);
    expect((await stat(pty.appPath)).isCharacterDevice()).toBe(true);
    expect(await readOnce(pty.appPath, () => writeTo(pty.devicePath, 'back\n'))).toBe('back\n');

    await pty.stop();
    expect(existsSync(pty.workDir)).toBe(false);
  });
});
