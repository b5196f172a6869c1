#!/usr/bin/env node
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration } from '@outpost/protocol/duration';
import { Command, InvalidArgumentError } from 'commander';
import { parseScenario, type Scenario, scenarioFromObject } from './scenario.js';
import { type SerialFleet, startSerialFleet } from './serial-fleet.js';

/**
 * `outpost-sim`: simulated devices for testing Outpost.
 *
 * stdout carries one JSON object per line (`{"event":"pty",...}`, `{"event":"ready"}`,
 * `{"event":"stats",...}`), so a test can follow it; diagnostics go to stderr.
 */

interface RunOptions {
  ptyDir?: string;
  statsFile?: string;
  statsInterval: number;
  duration?: number;
  socat?: string;
}

function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function durationArg(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new InvalidArgumentError('expected a duration such as 500ms, 10s, 2m or seconds');
  }
  return ms;
}

function intArg(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer ≥ 0');
  return n;
}

async function writeStats(path: string, fleet: SerialFleet): Promise<void> {
  // Write then rename: a reader never sees half a file.
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(fleet.stats(), null, 2)}\n`);
  await rename(temp, path);
}

/** Runs until SIGINT/SIGTERM (or the duration), then prints the counters and exits. */
async function run(scenario: Scenario, options: RunOptions): Promise<void> {
  const ownedDir =
    options.ptyDir === undefined ? await mkdtemp(join(tmpdir(), 'outpost-sim-')) : undefined;
  const ptyDir = options.ptyDir ?? ownedDir!;
  const fleet = await startSerialFleet(scenario, {
    ptyDir,
    ...(options.socat === undefined ? {} : { socat: options.socat }),
    onEvent: (device, event) => {
      if (event.type !== 'open') process.stderr.write(`${device}: ${JSON.stringify(event)}\n`);
    },
  });
  for (const [device, appPath] of Object.entries(fleet.appPaths)) {
    emit('pty', { device, appPath });
  }
  emit('ready', { devices: fleet.devices.map((d) => d.id) });

  let statsTimer: NodeJS.Timeout | undefined;
  const statsFile = options.statsFile;
  if (statsFile !== undefined) {
    const tick = async () => {
      await writeStats(statsFile, fleet).catch((err: Error) => {
        process.stderr.write(`stats file: ${err.message}\n`);
      });
      statsTimer = setTimeout(tick, options.statsInterval);
    };
    await tick();
  }

  let finishing = false;
  const finish = async (reason: string) => {
    if (finishing) return;
    finishing = true;
    clearTimeout(statsTimer);
    await fleet.stop();
    if (ownedDir !== undefined) await rm(ownedDir, { recursive: true, force: true });
    if (statsFile !== undefined) await writeStats(statsFile, fleet);
    emit('stats', { reason, ...fleet.stats() });
    process.exit(0);
  };
  process.on('SIGINT', () => void finish('SIGINT'));
  process.on('SIGTERM', () => void finish('SIGTERM'));
  const durationMs = options.duration ?? scenario.durationMs;
  if (durationMs !== undefined) setTimeout(() => void finish('duration'), durationMs);
}

function addRunOptions(command: Command): Command {
  return command
    .option('--pty-dir <dir>', 'where to make pty links (default: a new temp dir)')
    .option('--stats-file <path>', 'write the counters as JSON here, periodically and at exit')
    .option('--stats-interval <duration>', 'how often to write the stats file', durationArg, 1000)
    .option('--duration <duration>', 'stop after this long', durationArg)
    .option('--socat <path>', 'socat binary', 'socat');
}

function fail(err: unknown): never {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}

const program = new Command()
  .name('outpost-sim')
  .description('Simulated serial devices speaking PROTOCOL.md §10, with injected faults')
  .showHelpAfterError();

addRunOptions(
  program
    .command('serial')
    .description('run the serial devices of a scenario file')
    .requiredOption('--scenario <file>', 'scenario YAML'),
).action(async (opts: RunOptions & { scenario: string }) => {
  let scenario: Scenario;
  try {
    scenario = parseScenario(await readFile(opts.scenario, 'utf8'), opts.scenario);
  } catch (err) {
    fail(err);
  }
  await run(scenario, opts);
});

interface QuickOptions extends RunOptions {
  port?: string;
  pty?: boolean;
  metrics: string[];
  id: string;
  hardware: string;
  serial: string;
  firmware: string;
  baud: number;
  rate: number;
  seed: number;
  waitForId?: boolean;
  failFlash?: string;
  failHealth?: number;
  slowMs?: number;
  rebootMs?: number;
  maxImageBytes?: number;
}

addRunOptions(
  program
    .command('serial-device')
    .description('run one serial device from flags')
    .option('--port <path>', "the device's end of an existing link")
    .option('--pty', 'make a socat pty pair and print the application end')
    .requiredOption(
      '--metrics <name=signal...>',
      'e.g. t=sine:20:5:60,noise=0.1 h=const:40 p=steps:1/2/3:10s',
    )
    .option('--id <id>', 'device id', 'sim-1')
    .option('--hardware <hw>', 'hardware id', 'sim-th')
    .option('--serial <serial>', 'serial number', 'SIM0001')
    .option('--firmware <version>', 'firmware version', '1.0.0')
    .option('--baud <n>', 'baud rate', intArg, 115_200)
    .option('--rate <n>', 'readings per second', Number, 1)
    .option('--seed <n>', 'random seed', intArg, 1)
    .option('--wait-for-id', 'after each (re)open, stay quiet until the application sends ID?')
    .option('--fail-flash <verify|offset>', 'END fails verification, or the chunk at offset fails')
    .option('--fail-health <duration>', 'revert new firmware this long after reboot', durationArg)
    .option('--slow-ms <ms>', 'delay of each chunk ack', intArg)
    .option('--reboot-ms <ms>', 'silence while rebooting', intArg)
    .option('--max-image-bytes <n>', 'largest image the device stages', intArg),
).action(async (opts: QuickOptions) => {
  if ((opts.port === undefined) === (opts.pty !== true)) fail('give either --port PATH or --pty');
  const metrics: Record<string, string> = {};
  for (const spec of opts.metrics) {
    const eq = spec.indexOf('=');
    if (eq <= 0) fail(`--metrics: expected name=signal, got "${spec}"`);
    metrics[spec.slice(0, eq)] = spec.slice(eq + 1);
  }
  const bootloader: Record<string, unknown> = {};
  if (opts.failFlash !== undefined) {
    bootloader.failFlash =
      opts.failFlash === 'verify' ? 'verify' : { atOffset: Number(opts.failFlash) };
  }
  if (opts.failHealth !== undefined) bootloader.failHealth = { after: `${opts.failHealth}ms` };
  if (opts.slowMs !== undefined) bootloader.slowMs = opts.slowMs;
  if (opts.rebootMs !== undefined) bootloader.rebootMs = opts.rebootMs;
  if (opts.maxImageBytes !== undefined) bootloader.maxImageBytes = opts.maxImageBytes;
  let scenario: Scenario;
  try {
    scenario = scenarioFromObject(
      {
        seed: opts.seed,
        devices: [
          {
            id: opts.id,
            serial: opts.serial,
            hardware: opts.hardware,
            firmware: opts.firmware,
            ...(opts.port === undefined ? { pty: true } : { port: opts.port }),
            baud: opts.baud,
            rate: opts.rate,
            waitForId: opts.waitForId === true,
            metrics,
            bootloader,
          },
        ],
      },
      'flags',
    );
  } catch (err) {
    fail(err);
  }
  await run(scenario, opts);
});

program
  .command('check')
  .description('validate a scenario file and print it as JSON')
  .argument('<file>', 'scenario YAML')
  .action(async (file: string) => {
    try {
      const scenario = parseScenario(await readFile(file, 'utf8'), file);
      process.stdout.write(`${JSON.stringify(scenario, null, 2)}\n`);
    } catch (err) {
      fail(err);
    }
  });

await program.parseAsync(process.argv).catch(fail);
