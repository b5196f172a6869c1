import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc8Atm, formatReading } from '@outpost/protocol/serial-line';
import { ManagedProcess, waitFor } from '@outpost/test-kit/process';
import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { SerialPort } from 'serialport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SerialSource } from '../src/sources/serial-source.js';
import type { PortStatus, SourceReading } from '../src/sources/source.js';
import { serialSourceConfigSchema } from '../src/sources/source-config.js';

// Real parts: socat pty pairs (test-kit), serialport with the hangup-aware binding, the
// built `outpost-sim` binary (firmware-sim) or a plain writer on the device end of the pty.
// Unplugging is killing socat; replugging starts a new pty pair under the same link names.

const SIM_MAIN = join(
  dirname(createRequire(import.meta.url).resolve('@outpost/firmware-sim/package.json')),
  'dist',
  'main.js',
);

let work: WorkDir;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  work = await makeWorkDir('serial-source');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

afterAll(async () => {
  await work.cleanup();
});

async function pty(): Promise<PtyPairHandle> {
  const pair = await ptyPair({ workDir: await work.mkdir(`pty-${cleanups.length}-${Date.now()}`) });
  cleanups.push(() => pair.stop());
  return pair;
}

function collector() {
  const readings: SourceReading[] = [];
  return { readings, sink: (rs: SourceReading[]) => void readings.push(...rs) };
}

function source(
  port: string,
  sink: (rs: SourceReading[]) => void,
  extra: Record<string, unknown> = {},
  clock = { now: () => Date.now() },
): SerialSource {
  const config = serialSourceConfigSchema.parse({
    port,
    device: 'boiler-7',
    identifyEvery: '300ms',
    reconnect: { initial: '100ms', max: '1s' },
    ...extra,
  });
  const s = new SerialSource(config, { sink, clock });
  cleanups.push(() => s.stop());
  return s;
}

const status = (s: SerialSource): PortStatus => s.status()[0]!;

/** `outpost-sim serial-device` on the device end: it stays quiet until asked `ID?`. */
function simDevice(devicePath: string, name: string): ManagedProcess {
  const proc = ManagedProcess.start({
    name: 'outpost-sim',
    command: process.execPath,
    args: [
      SIM_MAIN,
      'serial-device',
      '--port',
      devicePath,
      '--wait-for-id',
      '--rate',
      '20',
      '--metrics',
      't=sine:20:5:60',
      'h=const:40',
      '--hardware',
      'th-v2',
      '--serial',
      'BR0001',
      '--firmware',
      '1.4.2',
    ],
    logPath: work.join(`${name}.log`),
    stopTimeoutMs: 5_000,
  });
  cleanups.push(() => proc.stop());
  return proc;
}

/** A plain writer on the device end of a pty. */
async function writer(devicePath: string) {
  const port = new SerialPort({ path: devicePath, baudRate: 115_200, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  cleanups.push(
    () => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())),
  );
  return (data: string | Uint8Array) =>
    new Promise<void>((resolve, reject) =>
      port.write(data, (err) => (err ? reject(err) : port.drain(() => resolve()))),
    );
}

describe('serial source with a firmware-sim device on a socat pty', { timeout: 60_000 }, () => {
  it('asks ID? after open, records the identity, reads CRC-checked readings', async () => {
    const pair = await pty();
    const got = collector();
    const s = source(pair.appPath, got.sink);
    await s.start();
    expect(status(s).state).toBe('open');
    const sim = simDevice(pair.devicePath, 'sim-identity');

    await waitFor(() => got.readings.length >= 20, {
      what: '20 readings',
      timeoutMs: 15_000,
      process: sim,
    });
    expect(status(s).identity).toEqual({ hardware: 'th-v2', serial: 'BR0001', version: '1.4.2' });
    const h = got.readings.filter((r) => r.metric === 'h');
    const t = got.readings.filter((r) => r.metric === 't');
    expect(h.length).toBeGreaterThan(5);
    expect(h.every((r) => r.value === 40 && r.device === 'boiler-7')).toBe(true);
    for (const r of t) {
      expect(r.value).toBeGreaterThanOrEqual(15);
      expect(r.value).toBeLessThanOrEqual(25);
      expect(Math.abs(r.time - Date.now() / 1000)).toBeLessThan(30);
    }
    expect(status(s).badLines).toBe(0);
  });

  it('unplug (socat killed) → missing; replug on the same link → recovers without a restart', async () => {
    const pair = await pty();
    const got = collector();
    const s = source(pair.appPath, got.sink);
    await s.start();
    const sim = simDevice(pair.devicePath, 'sim-unplug');
    await waitFor(() => got.readings.length >= 10, {
      what: 'readings',
      timeoutMs: 15_000,
      process: sim,
    });

    await pair.unplug();
    await waitFor(() => status(s).state === 'missing', { what: 'state missing', timeoutMs: 5_000 });
    await sleep(1_500); // a few failed attempts while the link is gone
    const before = got.readings.length;

    await pair.replug();
    await waitFor(() => status(s).state === 'open' && got.readings.length > before + 10, {
      what: 'readings after replug',
      timeoutMs: 15_000,
      process: sim,
    });
    const after = status(s);
    expect(after.reopens).toBeGreaterThanOrEqual(1);
    expect(after.resolvedPath).toMatch(/^\/dev\/pts\/\d+$/); // the pty behind the link, resolved again
    expect(after.identity?.serial).toBe('BR0001');
    expect(after.badLines).toBeLessThanOrEqual(1); // at most a line cut by the unplug
  });

  it('counts every broken line firmware-sim injects and receives every reading it sent', async () => {
    const pair = await pty();
    const got = collector();
    const s = source(pair.appPath, got.sink, { silentAfter: 0 });
    await s.start();
    const scenario = work.join('faults.yaml');
    await writeFile(
      scenario,
      `name: faults
seed: 7
devices:
  - id: boiler-1
    serial: BR0001
    hardware: th-v2
    firmware: 1.0.0
    port: ${pair.devicePath}
    rate: 20
    waitForId: true
    metrics:
      t: 'sine:65:8:60,noise=0.3'
      p: 'const:1.2'
faults:
  - { at: 1s, garbage: 3 }
  - { at: 1200ms, badCrc: 2 }
  - { at: 1400ms, partialLine: 2 }
  - { at: 1600ms, garbage: 1 }
`,
    );
    const sim = ManagedProcess.start({
      name: 'outpost-sim',
      command: process.execPath,
      args: [SIM_MAIN, 'serial', '--scenario', scenario, '--duration', '3s'],
      logPath: work.join('sim-faults.log'),
    });
    cleanups.push(() => sim.stop());
    await sim.waitForExit(20_000);
    const line = sim
      .log()
      .split('\n')
      .find((l) => l.startsWith('{"event":"stats"'));
    const stats = JSON.parse(line!) as {
      totals: {
        sent: Record<string, number>;
        garbageLines: number;
        badCrcLines: number;
        partialLines: number;
      };
    };
    const { totals } = stats;
    expect(totals.garbageLines + totals.badCrcLines + totals.partialLines).toBe(8);
    await waitFor(() => got.readings.filter((r) => r.metric === 't').length >= totals.sent.t!, {
      what: 'every reading sent',
      timeoutMs: 5_000,
    });
    await sleep(200);
    expect(got.readings.filter((r) => r.metric === 't')).toHaveLength(totals.sent.t!);
    expect(got.readings.filter((r) => r.metric === 'p')).toHaveLength(totals.sent.p!);
    const st = status(s);
    expect(st.badLines).toBe(8);
    expect(st.badLinesByReason.crc).toBe(totals.badCrcLines);
    expect(st.badLinesByReason.charset).toBe(totals.garbageLines);
    expect(st.badLinesByReason.syntax).toBe(totals.partialLines);
  });
});

describe('serial source with a plain writer on a socat pty', { timeout: 60_000 }, () => {
  it('garbage, bad CRC, partial and overlong lines are counted; the source keeps going', async () => {
    const pair = await pty();
    const got = collector();
    let wall = Date.UTC(2026, 0, 1);
    const s = source(pair.appPath, got.sink, { identify: false }, { now: () => wall });
    await s.start();
    const write = await writer(pair.devicePath);
    const good = (t: number) => formatReading([['t', t]]);

    await write(good(1));
    await waitFor(() => got.readings.length === 1, { what: 'first reading', timeoutMs: 5_000 });
    const badCrc = good(2).replace(
      /\*([0-9A-F]{2})/,
      (_m, hex: string) =>
        `*${((Number.parseInt(hex, 16) ^ 0x5a) & 0xff).toString(16).toUpperCase().padStart(2, '0')}`,
    );
    await write(new Uint8Array([0xff, 0xfe, 0x01, 0x02, 0x0a])); // garbage
    await write(badCrc);
    await write('R t=2 h=\n'); // cut short, no checksum
    await write(`R ${'x'.repeat(3_000)}\n`); // over the 1024-byte limit
    await write('\n\r\n'); // blank lines: neither data nor errors
    // one line in two writes, with a pause in between: reassembled
    const body = ' t=3 ';
    await write(`R${body.slice(0, 3)}`);
    await sleep(100);
    await write(`${body.slice(3)}*${crc8Atm(body).toString(16).toUpperCase().padStart(2, '0')}\n`);
    await waitFor(() => got.readings.length === 2, {
      what: 'the reassembled reading',
      timeoutMs: 5_000,
    });

    // clock jumps: readings keep the wall-clock time they arrive at, nothing breaks
    wall -= 3_600_000;
    await write(good(4));
    await waitFor(() => got.readings.length === 3, {
      what: 'a reading after the clock went back',
      timeoutMs: 5_000,
    });
    wall += 86_400_000;
    await write(good(5));
    await waitFor(() => got.readings.length === 4, {
      what: 'a reading after the clock jumped',
      timeoutMs: 5_000,
    });

    // Two lines arriving at one wall-clock instant get distinct times, 1 ms apart.
    expect(got.readings.map((r) => [r.value, r.time])).toEqual([
      [1, Date.UTC(2026, 0, 1) / 1000],
      [3, (Date.UTC(2026, 0, 1) + 1) / 1000],
      [4, Date.UTC(2026, 0, 1) / 1000 - 3_600],
      [5, Date.UTC(2026, 0, 1) / 1000 - 3_600 + 86_400],
    ]);
    const st = status(s);
    expect(st.badLinesByReason).toEqual({ charset: 1, crc: 1, syntax: 1, too_long: 1 });
    expect(st.badLines).toBe(4);
    expect(st.lines).toBe(8);
    expect(st.state).toBe('open');
  });

  it('a silent device is reported silent and reopened; it is open again once it speaks', async () => {
    const pair = await pty();
    const got = collector();
    const s = source(pair.appPath, got.sink, { identify: false, silentAfter: '1s' });
    await s.start();
    const write = await writer(pair.devicePath);
    for (let i = 0; i < 5; i++) {
      await write(formatReading([['t', i]]));
      await sleep(100);
    }
    await waitFor(() => got.readings.length === 5, { what: 'readings', timeoutMs: 5_000 });
    expect(status(s).state).toBe('open');

    await waitFor(() => status(s).state === 'silent', { what: 'state silent', timeoutMs: 5_000 });
    await waitFor(() => status(s).reopens >= 1, { what: 'a reopen', timeoutMs: 5_000 });
    expect(status(s).lastError).toBe('no valid frame');

    const before = got.readings.length;
    await waitFor(
      async () => {
        await write(formatReading([['t', 99]]));
        return status(s).state === 'open' && got.readings.length > before;
      },
      { what: 'open again', timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(got.readings.at(-1)?.value).toBe(99);
  });

  it('starts with the port missing and opens it when it appears, with no restart', async () => {
    const pair = await pty();
    await pair.unplug();
    const got = collector();
    const s = source(pair.appPath, got.sink, { identify: false });
    await s.start();
    expect(status(s).state).toBe('missing');
    expect(status(s).lastError).toBe('port not found');
    await pair.replug();
    await waitFor(() => status(s).state === 'open', { what: 'state open', timeoutMs: 5_000 });
    const write = await writer(pair.devicePath);
    await waitFor(
      async () => {
        await write(formatReading([['t', 7]]));
        return got.readings.length > 0;
      },
      { what: 'a reading', timeoutMs: 5_000, intervalMs: 100 },
    );
    expect(got.readings[0]).toMatchObject({ device: 'boiler-7', metric: 't', value: 7 });
  });

  it('a throwing sink is logged, not fatal; non-reading lines reach frame listeners; write() works', async () => {
    const pair = await pty();
    let calls = 0;
    const s = source(
      pair.appPath,
      () => {
        calls++;
        throw new Error('sink failed');
      },
      { identify: false },
    );
    await expect(s.write('ID?\n')).rejects.toThrow(/not open/);
    await s.start();
    const frames: string[] = [];
    s.onFrame((frame) => frames.push(frame.kind));
    const port = new SerialPort({ path: pair.devicePath, baudRate: 115_200, autoOpen: false });
    await new Promise<void>((resolve, reject) =>
      port.open((err) => (err ? reject(err) : resolve())),
    );
    cleanups.push(() => new Promise<void>((resolve) => port.close(() => resolve())));
    const heard: string[] = [];
    port.on('data', (chunk: Buffer) => heard.push(chunk.toString('latin1')));
    await s.write('ID?\n');
    await waitFor(() => heard.join('') === 'ID?\n', {
      what: 'ID? on the device end',
      timeoutMs: 5_000,
    });
    port.write(`${formatReading([['t', 1]])}LOG booted\nOK 512\n${formatReading([['t', 2]])}`);
    await waitFor(() => calls >= 1 && status(s).readings === 2, {
      what: 'two readings',
      timeoutMs: 5_000,
    });
    await waitFor(() => frames.length === 2, { what: 'two frames', timeoutMs: 5_000 });
    expect(frames).toEqual(['log', 'ok']);
    expect(status(s).state).toBe('open');
  });

  it('stop() closes the port and ends the retries', async () => {
    const pair = await pty();
    const s = source(pair.appPath, () => {});
    await s.start();
    expect(status(s).state).toBe('open');
    await s.stop();
    await pair.unplug();
    await sleep(300);
    expect(status(s).state).toBe('open'); // frozen: nothing runs after stop
  });
});
