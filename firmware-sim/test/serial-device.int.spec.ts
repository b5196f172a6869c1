import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  formatFwBegin,
  formatFwChunk,
  formatFwEnd,
  formatIdRequest,
  LineSplitter,
  MAX_FW_CHUNK_BYTES,
  parseLine,
  type SerialLine,
} from '@outpost/protocol/serial-line';
import { createSerialPort } from '@outpost/serialport/hangup-aware-binding';
import { type PtyPairHandle, ptyPair } from '@outpost/test-kit/socat-pty';
import { useServices } from '@outpost/test-kit/vitest';
import { makeWorkDir } from '@outpost/test-kit/workdir';
import type { SerialPort } from 'serialport';
import { afterEach, describe, expect, it } from 'vitest';
import type { BootloaderOptions } from '../src/bootloader.js';
import type { FleetStats } from '../src/device.js';
import { buildFirmwareImage } from '../src/firmware-image.js';
import { mulberry32 } from '../src/random.js';
import type { SerialDeviceConfig } from '../src/scenario.js';
import { SerialDevice } from '../src/serial-device.js';

// Real: socat pty pairs (test-kit), serialport on both ends, node:crypto sha256, the built
// `outpost-sim` binary as a child process. The test plays the edge agent on the app end.
// Mocked: nothing.

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The application's end: every line it reads, parsed, in order. */
class AppSide {
  readonly lines: SerialLine[] = [];
  readonly #port: SerialPort;
  readonly #splitter = new LineSplitter();
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(port: SerialPort) {
    this.#port = port;
    port.on('data', (chunk: Buffer) => {
      for (const text of this.#splitter.push(chunk)) this.lines.push(parseLine(text));
      for (const wake of this.#waiters.splice(0)) wake();
    });
    port.on('close', () => {
      this.closed = true;
      for (const wake of this.#waiters.splice(0)) wake();
    });
    port.on('error', () => {});
  }

  static async open(path: string): Promise<AppSide> {
    // The stock serialport never notices the other side hanging up (see @outpost/serialport).
    const port = createSerialPort(path, 115_200);
    await new Promise<void>((resolve, reject) =>
      port.open((err) => (err ? reject(err) : resolve())),
    );
    return new AppSide(port);
  }

  send(line: string): void {
    this.#port.write(line);
  }

  of<K extends SerialLine['kind']>(kind: K): Extract<SerialLine, { kind: K }>[] {
    return this.lines.filter((l): l is Extract<SerialLine, { kind: K }> => l.kind === kind);
  }

  /** Waits for a line after index `from` that matches; returns it and its index. */
  async waitFor(
    match: (line: SerialLine) => boolean,
    { from = 0, timeoutMs = 5000 } = {},
  ): Promise<{ line: SerialLine; index: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.lines.findIndex((l, i) => i >= from && match(l));
      if (index >= 0) return { line: this.lines[index]!, index };
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        throw new Error(`no matching line; last lines: ${JSON.stringify(this.lines.slice(-5))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends a line and waits for the next OK or ERR after it (readings may come between). */
  async command(line: string, timeoutMs = 5000): Promise<SerialLine> {
    const from = this.lines.length;
    this.send(line);
    const { line: answer } = await this.waitFor((l) => l.kind === 'ok' || l.kind === 'err', {
      from,
      timeoutMs,
    });
    return answer;
  }

  async close(): Promise<void> {
    if (!this.#port.isOpen) return;
    await new Promise<void>((resolve) => this.#port.close(() => resolve()));
  }
}

/** What the edge agent's flasher does: BEGIN, chunks with acks (resending on ERR), END. */
async function flash(app: AppSide, image: Uint8Array): Promise<{ errors: SerialLine[] }> {
  const errors: SerialLine[] = [];
  const begin = await app.command(formatFwBegin(image.length, sha256(image)));
  expect(begin.kind).toBe('ok');
  let offset = begin.kind === 'ok' ? begin.offset : 0;
  while (offset < image.length) {
    const data = image.subarray(offset, offset + MAX_FW_CHUNK_BYTES);
    const answer = await app.command(formatFwChunk(offset, data));
    if (answer.kind === 'ok' && answer.offset === offset) {
      offset += data.length;
    } else {
      errors.push(answer);
      if (errors.length > 5) throw new Error(`too many errors: ${JSON.stringify(errors)}`);
    }
  }
  expect(await app.command(formatFwEnd())).toEqual({ kind: 'ok', offset: image.length });
  return { errors };
}

function config(overrides: Partial<SerialDeviceConfig> = {}): SerialDeviceConfig {
  return {
    id: 'th-1',
    identity: { hardware: 'th-v2', serial: 'SN0001', version: '1.0.0' },
    transport: 'serial',
    link: { kind: 'pty' },
    baud: 115_200,
    ratePerS: 20,
    waitForId: false,
    seed: 1,
    metrics: [
      { name: 't', signal: { shape: { kind: 'sine', base: 20, amplitude: 5, periodS: 60 } } },
      { name: 'h', signal: { shape: { kind: 'constant', value: 40 }, noise: 1 } },
    ],
    bootloader: { rebootMs: 100 },
    ...overrides,
  };
}

const services = useServices();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(
  overrides: Partial<SerialDeviceConfig> = {},
  bootloader: Partial<BootloaderOptions> = {},
): Promise<{ pty: PtyPairHandle; app: AppSide; device: SerialDevice }> {
  const pty = await services.add(ptyPair());
  // The application opens first: opening a serial port discards what is buffered.
  const app = await AppSide.open(pty.appPath);
  const base = config(overrides);
  const device = new SerialDevice(
    { ...base, bootloader: { ...base.bootloader, ...bootloader } },
    { path: pty.devicePath },
  );
  cleanups.push(async () => {
    await device.stop();
    await app.close();
  });
  await device.start();
  return { pty, app, device };
}

describe('a simulated serial device on a real pty pair', () => {
  it('writes readings with valid checksums, and counts exactly what it sent', async () => {
    const { app, device } = await setup();
    await app.waitFor((l) => l.kind === 'reading');
    await sleep(1000);
    await device.stop();
    await sleep(100);
    const readings = app.of('reading');
    expect(app.of('invalid')).toEqual([]);
    expect(readings.length).toBeGreaterThanOrEqual(15); // 20/s for about a second
    const stats = device.stats();
    expect(stats.readings).toBe(readings.length);
    expect(stats.sent).toEqual({ t: readings.length, h: readings.length });
    expect(readings[0]!.values.map(([m]) => m)).toEqual(['t', 'h']);
    expect(readings.every((r) => r.values[0]![1] >= 15 && r.values[0]![1] <= 25)).toBe(true);
  });

  it('answers ID?', async () => {
    const { app } = await setup();
    app.send(formatIdRequest());
    const { line } = await app.waitFor((l) => l.kind === 'id');
    expect(line).toEqual({ kind: 'id', hardware: 'th-v2', serial: 'SN0001', version: '1.0.0' });
  });

  it('takes a 20 KiB firmware update in acknowledged base64 chunks and reboots into it', async () => {
    const { app, device } = await setup();
    const image = buildFirmwareImage(
      { hardware: 'th-v2', version: '1.1.0' },
      20 * 1024,
      mulberry32(3),
    );
    const from = app.lines.length;
    const { errors } = await flash(app, image);
    expect(errors).toEqual([]);
    const { line, index } = await app.waitFor((l) => l.kind === 'id', { from });
    expect(line).toEqual({ kind: 'id', hardware: 'th-v2', serial: 'SN0001', version: '1.1.0' });
    // The device keeps measuring after the reboot, and answers with its new version.
    await app.waitFor((l) => l.kind === 'reading', { from: index });
    app.send(formatIdRequest());
    await app.waitFor((l) => l.kind === 'id' && l.version === '1.1.0', { from: index + 1 });
    expect(device.stats()).toMatchObject({
      version: '1.1.0',
      firmware: { begins: 1, chunksOk: 40, updates: 1, errors: 0 },
    });
    expect(app.of('invalid')).toEqual([]);
  });

  it('resumes an interrupted update from the offset its second BEGIN returns', async () => {
    const { app } = await setup({ ratePerS: 5 });
    const image = buildFirmwareImage({ hardware: 'th-v2', version: '1.2.0' }, 8192, mulberry32(4));
    await app.command(formatFwBegin(image.length, sha256(image)));
    for (let offset = 0; offset < 3072; offset += MAX_FW_CHUNK_BYTES) {
      await app.command(formatFwChunk(offset, image.subarray(offset, offset + MAX_FW_CHUNK_BYTES)));
    }
    expect(await app.command(formatFwBegin(image.length, sha256(image)))).toEqual({
      kind: 'ok',
      offset: 3072,
    });
    await flash(app, image);
    await app.waitFor((l) => l.kind === 'id' && l.version === '1.2.0');
  });

  it('a failing health check: new ID first, then a revert to the old version, said so', async () => {
    const { app, device } = await setup({}, { failHealth: { afterMs: 300 } });
    const image = buildFirmwareImage({ hardware: 'th-v2', version: '2.0.0' }, 4096, mulberry32(5));
    const from = app.lines.length;
    await flash(app, image);
    const newId = await app.waitFor((l) => l.kind === 'id', { from });
    expect(newId.line).toMatchObject({ version: '2.0.0' });
    const log = await app.waitFor((l) => l.kind === 'log', { from: newId.index });
    expect(log.line).toEqual({
      kind: 'log',
      text: 'health check failed, reverted to 1.0.0',
      revertedTo: '1.0.0',
    });
    const oldId = await app.waitFor((l) => l.kind === 'id', { from: log.index });
    expect(oldId.line).toMatchObject({ version: '1.0.0' });
    expect(device.stats()).toMatchObject({ version: '1.0.0', firmware: { reverts: 1 } });
  });

  it('a slow flash with a failing chunk: the ack waits, the ERR names the offset, a resend works', async () => {
    const { app } = await setup(
      { ratePerS: 5 },
      { slowMs: 40, failFlash: { kind: 'write', atOffset: 2048, times: 1 } },
    );
    const image = buildFirmwareImage({ hardware: 'th-v2', version: '1.3.0' }, 4096, mulberry32(6));
    await app.command(formatFwBegin(image.length, sha256(image)));
    const t0 = performance.now();
    await app.command(formatFwChunk(0, image.subarray(0, 512)));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    const { errors } = await flash(app, image);
    expect(errors).toEqual([{ kind: 'err', offset: 2048, reason: 'flash' }]);
    await app.waitFor((l) => l.kind === 'id' && l.version === '1.3.0');
  });

  it('keeps going through an unplug (socat killed) and a replug', async () => {
    const { pty, app, device } = await setup({ ratePerS: 20 });
    await app.waitFor((l) => l.kind === 'reading');
    await pty.unplug();
    await app.waitFor(() => false, { timeoutMs: 2000 }).catch(() => {});
    expect(app.closed).toBe(true);
    await sleep(300);
    expect(device.stats().connected).toBe(false);
    await pty.replug();
    const again = await AppSide.open(pty.appPath);
    cleanups.push(() => again.close());
    await again.waitFor((l) => l.kind === 'reading', { timeoutMs: 5000 });
    again.send(formatIdRequest());
    await again.waitFor((l) => l.kind === 'id');
    const stats = device.stats();
    expect(stats.opens).toBe(2);
    expect(stats.connected).toBe(true);
    expect(again.of('invalid')).toEqual([]);
  });

  it('injects garbage, bad-checksum and cut lines, counted exactly, never as sent readings', async () => {
    const { app, device } = await setup({ ratePerS: 10 });
    await app.waitFor((l) => l.kind === 'reading');
    device.inject({ kind: 'garbage', lines: 4 });
    device.inject({ kind: 'badCrc', lines: 3 });
    device.inject({ kind: 'partialLine', lines: 2 });
    await sleep(300);
    await device.stop();
    await sleep(100);
    const reasons = app.of('invalid').map((l) => l.reason);
    const stats = device.stats();
    expect(stats).toMatchObject({ garbageLines: 4, badCrcLines: 3, partialLines: 2 });
    expect(reasons.filter((r) => r === 'charset')).toHaveLength(4);
    expect(reasons.filter((r) => r === 'crc')).toHaveLength(3);
    expect(reasons).toHaveLength(9);
    expect(stats.readings).toBe(app.of('reading').length);
    expect(stats.sent.t).toBe(app.of('reading').length);
  });

  it('with waitForId, stays quiet after each open until the application asks who it is', async () => {
    const { app, device } = await setup({ waitForId: true });
    await sleep(300);
    expect(app.lines).toEqual([]);
    expect(device.stats().skipped).toBeGreaterThan(0);
    app.send(formatIdRequest());
    const { index } = await app.waitFor((l) => l.kind === 'id');
    expect(index).toBe(0);
    await app.waitFor((l) => l.kind === 'reading');
  });

  it('silence: nothing at all for its duration, then readings again', async () => {
    const { app, device } = await setup({ ratePerS: 20 });
    await app.waitFor((l) => l.kind === 'reading');
    device.inject({ kind: 'silence', forMs: 500 });
    const from = app.lines.length + 2; // a line may be on its way
    app.send(formatIdRequest());
    await sleep(400);
    expect(app.lines.slice(from)).toEqual([]);
    await app.waitFor((l) => l.kind === 'reading', { from });
    expect(app.of('id')).toEqual([]); // the ID? came while it was hung
  });
});

interface Sim {
  proc: ChildProcess;
  events(): ({ event: string } & Record<string, unknown>)[];
  stderr(): string;
  exited: Promise<number | null>;
  /** Waits for `{"event":"ready"}` on stdout. */
  ready(): Promise<void>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

function startSim(args: string[]): Sim {
  const proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  proc.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const events = () =>
    stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event: string } & Record<string, unknown>);
  return {
    proc,
    events,
    stderr: () => stderr,
    exited,
    async ready() {
      const deadline = Date.now() + 10_000;
      while (!events().some((e) => e.event === 'ready')) {
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no ready: ${stderr}`);
        await sleep(20);
      }
    },
  };
}

async function workDir(name: string) {
  const work = await makeWorkDir(name);
  cleanups.push(async () => {
    await work.cleanup();
  });
  return work;
}

describe('the outpost-sim binary', () => {
  it('makes a pty pair, prints its app path, and prints exact counters on SIGTERM', async () => {
    const work = await workDir('outpost-sim');
    const statsFile = work.join('stats.json');
    const sim = startSim([
      'serial-device',
      '--pty',
      '--pty-dir',
      work.path,
      '--id',
      'cli-1',
      '--metrics',
      't=sine:20:5:60,noise=0.1',
      'p=steps:1/2:1s',
      '--rate',
      '25',
      '--wait-for-id',
      '--stats-file',
      statsFile,
      '--stats-interval',
      '200ms',
    ]);
    await sim.ready();
    const pty = sim.events().find((e) => e.event === 'pty');
    expect(pty).toEqual({ event: 'pty', device: 'cli-1', appPath: work.join('cli-1') });

    const app = await AppSide.open(String(pty!.appPath));
    cleanups.push(() => app.close());
    app.send(formatIdRequest());
    await app.waitFor((l) => l.kind === 'id');
    await app.waitFor((l) => l.kind === 'reading');
    await sleep(800);
    const periodic = JSON.parse(await readFile(statsFile, 'utf8')) as FleetStats;
    expect(periodic.devices['cli-1']!.readings).toBeGreaterThan(0);

    sim.proc.kill('SIGTERM');
    expect(await sim.exited).toBe(0);
    await sleep(100);
    const final = sim.events().find((e) => e.event === 'stats') as unknown as FleetStats;
    const received = app.of('reading').length;
    expect(received).toBeGreaterThan(10);
    expect(final.devices['cli-1']!.sent).toEqual({ t: received, p: received });
    expect(final.totals.sent).toEqual({ t: received, p: received });
    expect(app.of('invalid')).toEqual([]);
    const fromFile = JSON.parse(await readFile(statsFile, 'utf8')) as FleetStats;
    expect(fromFile.devices['cli-1']!.sent).toEqual(final.devices['cli-1']!.sent);
  });

  it('runs a scenario fleet with scheduled faults; its counters match what arrived', async () => {
    const work = await workDir('outpost-sim-fleet');
    const file = work.join('fleet.yaml');
    await writeFile(
      file,
      `name: fleet
devices:
  - { id: a, serial: SA, hardware: hw, firmware: 1.0.0, pty: true, rate: 20, waitForId: true, metrics: { t: 'sine:20:5' } }
  - { id: b, serial: SB, hardware: hw, firmware: 1.0.0, pty: true, rate: 10, waitForId: true, metrics: { t: 'const:1', h: 'const:2,noise=1' } }
faults:
  - { at: 1s, garbage: 2 }
  - { at: 1100ms, device: a, badCrc: 3 }
  - { at: 1200ms, device: b, partialLine: 1 }
`,
    );
    const sim = startSim(['serial', '--scenario', file, '--pty-dir', work.path]);
    await sim.ready();
    const paths = Object.fromEntries(
      sim
        .events()
        .filter((e) => e.event === 'pty')
        .map((e) => [String(e.device), String(e.appPath)]),
    );
    expect(paths).toEqual({ a: work.join('a'), b: work.join('b') });
    const apps: Record<string, AppSide> = {};
    for (const [id, path] of Object.entries(paths)) {
      const app = await AppSide.open(path);
      cleanups.push(() => app.close());
      app.send(formatIdRequest());
      apps[id] = app;
    }
    await sleep(1800);
    sim.proc.kill('SIGINT');
    expect(await sim.exited).toBe(0);
    await sleep(100);
    const final = sim.events().find((e) => e.event === 'stats') as unknown as FleetStats;
    for (const id of ['a', 'b']) {
      const app = apps[id]!;
      const device = final.devices[id]!;
      const readings = app.of('reading').length;
      const reasons = app.of('invalid').map((l) => l.reason);
      expect(readings).toBeGreaterThan(5);
      expect(device.readings).toBe(readings);
      for (const n of Object.values(device.sent)) expect(n).toBe(readings);
      expect(device.garbageLines).toBe(2);
      expect(reasons.filter((r) => r === 'charset')).toHaveLength(2);
      expect(reasons.filter((r) => r === 'crc')).toHaveLength(device.badCrcLines);
      expect(reasons).toHaveLength(device.garbageLines + device.badCrcLines + device.partialLines);
    }
    expect(final.devices.a!.badCrcLines).toBe(3);
    expect(final.devices.b!.partialLines).toBe(1);
    expect(final.totals.garbageLines).toBe(4);
  });

  it('refuses a bad scenario, listing each problem with its path', async () => {
    const work = await workDir('outpost-sim-bad');
    const file = work.join('bad.yaml');
    await writeFile(file, 'devices:\n  - id: X\n    rate: fast\n');
    const sim = startSim(['serial', '--scenario', file]);
    expect(await sim.exited).toBe(2);
    expect(sim.stderr()).toMatch(/devices\[0\]\.id: device id must match/);
    expect(sim.stderr()).toMatch(/devices\[0\]\.rate: /);
    expect(sim.stderr()).toMatch(/devices\[0\]\.metrics: /);
  });
});
