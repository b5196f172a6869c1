#!/usr/bin/env node
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseDuration } from '@outpost/protocol/duration';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type BootloaderFlags, bootloaderFromFlags } from './bootloader-flags.js';
import type { FleetStats } from './device.js';
import { DEFAULT_FLEET_METRICS, fleetScenario } from './fleet-plan.js';
import type { MqttDeviceEvent } from './mqtt-device.js';
import { type MqttFleetOptions, startMqttFleet } from './mqtt-fleet.js';
import { parseScenario, type Scenario, ScenarioError, scenarioFromObject } from './scenario.js';
import { startSerialFleet } from './serial-fleet.js';

/**
 * `outpost-sim`: simulated devices for testing Outpost.
 *
 * stdout carries one JSON object per line (`{"event":"pty",...}`, `{"event":"ready"}`,
 * `{"event":"stats",...}`), so a test can follow it; diagnostics go to stderr.
 */

interface StatsOptions {
  statsFile?: string;
  statsInterval: number;
  duration?: number;
}

interface RunOptions extends StatsOptions {
  ptyDir?: string;
  socat?: string;
}

/** What the run loop needs of a running set of devices, whatever their transport. */
interface RunningFleet {
  stats(): FleetStats;
  stop(): Promise<void>;
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

function positiveIntArg(text: string): number {
  const n = intArg(text);
  if (n === 0) throw new InvalidArgumentError('expected an integer ≥ 1');
  return n;
}

function positiveNumberArg(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number > 0');
  return n;
}

async function writeStats(path: string, fleet: RunningFleet): Promise<void> {
  // Write then rename: a reader never sees half a file.
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(fleet.stats(), null, 2)}\n`);
  await rename(temp, path);
}

/** Runs the serial devices of a scenario on pty pairs (or given ports) until done. */
async function runSerial(scenario: Scenario, options: RunOptions): Promise<void> {
  const ownedDir =
    options.ptyDir === undefined ? await mkdtemp(join(tmpdir(), 'outpost-sim-')) : undefined;
  const ptyDir = options.ptyDir ?? ownedDir!;
  // A given --pty-dir is made if it does not exist yet.
  await mkdir(ptyDir, { recursive: true });
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
  await runUntilDone(fleet, options, scenario.durationMs, async () => {
    if (ownedDir !== undefined) await rm(ownedDir, { recursive: true, force: true });
  });
}

/** Runs MQTT devices (a scenario's, or the fleet command's) until done. */
async function runMqtt(
  scenario: Scenario,
  options: StatsOptions,
  fleetOptions: MqttFleetOptions,
): Promise<void> {
  const fleet = await startMqttFleet(scenario, {
    ...fleetOptions,
    onEvent: (device, event) => {
      if (isWorthLogging(event)) process.stderr.write(`${device}: ${JSON.stringify(event)}\n`);
    },
  });
  emit('ready', { devices: fleet.devices.map((d) => d.id) });
  await runUntilDone(fleet, options, scenario.durationMs);
}

/** Connection trouble and refusals; not each connect or command of a large fleet. */
function isWorthLogging(event: MqttDeviceEvent): boolean {
  return event.type !== 'up' && event.type !== 'command';
}

/**
 * Writes the stats file every interval; on SIGINT/SIGTERM (or at the end of the duration)
 * stops the devices, writes the file once more, prints the counters and exits 0.
 */
async function runUntilDone(
  fleet: RunningFleet,
  options: StatsOptions,
  scenarioDurationMs: number | undefined,
  cleanup: () => Promise<void> = async () => {},
): Promise<void> {
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
    await cleanup();
    if (statsFile !== undefined) await writeStats(statsFile, fleet);
    emit('stats', { reason, ...fleet.stats() });
    process.exit(0);
  };
  process.on('SIGINT', () => void finish('SIGINT'));
  process.on('SIGTERM', () => void finish('SIGTERM'));
  const durationMs = options.duration ?? scenarioDurationMs;
  if (durationMs !== undefined) setTimeout(() => void finish('duration'), durationMs);
}

/** Each command runs one kind of device; a scenario holding others is refused. */
function onlyTransport(scenario: Scenario, transport: 'serial' | 'mqtt', source: string): void {
  const issues = scenario.devices.flatMap((d, i) =>
    d.transport === transport
      ? []
      : [
          {
            path: `devices[${i}]`,
            message: `"${d.id}" is a ${d.transport} device: run it with outpost-sim ${d.transport}`,
          },
        ],
  );
  if (issues.length > 0) throw new ScenarioError(source, issues);
}

async function readScenario(file: string, transport: 'serial' | 'mqtt'): Promise<Scenario> {
  try {
    const scenario = parseScenario(await readFile(file, 'utf8'), file);
    onlyTransport(scenario, transport, file);
    return scenario;
  } catch (err) {
    fail(err);
  }
}

function addStatsOptions(command: Command): Command {
  return command
    .option('--stats-file <path>', 'write the counters as JSON here, periodically and at exit')
    .option('--stats-interval <duration>', 'how often to write the stats file', durationArg, 1000)
    .option('--duration <duration>', 'stop after this long', durationArg);
}

function addRunOptions(command: Command): Command {
  return addStatsOptions(command)
    .option('--pty-dir <dir>', 'where to make pty links (default: a new temp dir)')
    .option('--socat <path>', 'socat binary', 'socat');
}

/** `--metrics t=sine:20:5 h=const:40` → `{t: 'sine:20:5', h: 'const:40'}`. */
function metricFlags(specs: readonly string[]): Record<string, string> {
  const metrics: Record<string, string> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0) fail(`--metrics: expected name=signal, got "${spec}"`);
    metrics[spec.slice(0, eq)] = spec.slice(eq + 1);
  }
  return metrics;
}

function fail(err: unknown): never {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}

const program = new Command()
  .name('outpost-sim')
  .description(
    'Simulated serial (PROTOCOL.md §10) and MQTT (PROTOCOL.md §3-§5) devices, with injected faults',
  )
  .showHelpAfterError();

addRunOptions(
  program
    .command('serial')
    .description('run the serial devices of a scenario file')
    .requiredOption('--scenario <file>', 'scenario YAML'),
).action(async (opts: RunOptions & { scenario: string }) => {
  await runSerial(await readScenario(opts.scenario, 'serial'), opts);
});

interface QuickOptions extends RunOptions, BootloaderFlags {
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
    .option(
      '--fail-flash-times <n>',
      'the flash failure happens n times, then works',
      positiveIntArg,
    )
    .option('--fail-health <duration>', 'revert new firmware this long after reboot', durationArg)
    .option(
      '--fail-health-times <n>',
      'the health check fails n times, then passes',
      positiveIntArg,
    )
    .option('--slow-ms <ms>', 'delay of each chunk ack', intArg)
    .option('--reboot-ms <ms>', 'silence while rebooting', intArg)
    .option('--max-image-bytes <n>', 'largest image the device stages', intArg),
).action(async (opts: QuickOptions) => {
  if ((opts.port === undefined) === (opts.pty !== true)) fail('give either --port PATH or --pty');
  const metrics = metricFlags(opts.metrics);
  let bootloader: Record<string, unknown>;
  try {
    bootloader = bootloaderFromFlags(opts);
  } catch (err) {
    fail(err);
  }
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
  await runSerial(scenario, opts);
});

interface MqttOptions extends StatsOptions {
  server?: string;
  adminToken?: string;
  drainTimeout: number;
  concurrency: number;
}

function addMqttOptions(command: Command): Command {
  return addStatsOptions(command)
    .addOption(
      new Option('--admin-token <token>', 'admin API token, to make enrollments').env(
        'OUTPOST_ADMIN_TOKEN',
      ),
    )
    .option(
      '--drain-timeout <duration>',
      'at the end, how long to wait for unacknowledged batches',
      durationArg,
      10_000,
    )
    .option('--concurrency <n>', 'devices enrolling and connecting at once', positiveIntArg, 16);
}

function mqttFleetOptions(opts: MqttOptions, baseDir: string): MqttFleetOptions {
  return {
    ...(opts.server === undefined ? {} : { server: opts.server }),
    ...(opts.adminToken === undefined ? {} : { adminToken: opts.adminToken }),
    baseDir,
    drainTimeoutMs: opts.drainTimeout,
    startConcurrency: opts.concurrency,
  };
}

addMqttOptions(
  program
    .command('mqtt')
    .description('run the MQTT devices of a scenario file (direct to the ingest, or local)')
    .requiredOption('--scenario <file>', 'scenario YAML')
    .option('--server <url>', "the service's HTTP URL for devices that enroll (overrides server:)"),
).action(async (opts: MqttOptions & { scenario: string }) => {
  const scenario = await readScenario(opts.scenario, 'mqtt');
  await runMqtt(scenario, opts, mqttFleetOptions(opts, dirname(opts.scenario)));
});

interface FleetOptions extends MqttOptions {
  server: string;
  devices: number;
  rate: number;
  batch: number;
  batchInterval: number;
  prefix: string;
  unsigned?: boolean;
  metrics?: string[];
  window: number;
  maxPending: number;
  seed: number;
  broker?: string;
  jwtLifetime?: number;
}

addMqttOptions(
  program
    .command('fleet')
    .description('load test: enroll N direct MQTT devices and publish N × R readings/s')
    .requiredOption('--server <url>', "the service's HTTP URL")
    .requiredOption('--devices <n>', 'how many devices', positiveIntArg)
    .requiredOption('--rate <r>', 'readings per second per device', positiveNumberArg)
    .option('--batch <n>', 'readings per batch at most', positiveIntArg, 100)
    .option(
      '--batch-interval <duration>',
      'a batch closes this long after its first reading',
      durationArg,
      1000,
    )
    .option('--prefix <prefix>', 'device ids are <prefix>001, <prefix>002, …', 'sim-')
    .option('--unsigned', 'bare SenML batches; the devices get payloadSigning: optional')
    .option(
      '--metrics <name=signal...>',
      'metrics of every device (default v=sine:20:5:60,noise=0.1)',
    )
    .option('--window <n>', 'batches in flight per device', positiveIntArg, 8)
    .option('--max-pending <n>', 'unacknowledged readings kept per device', positiveIntArg, 10_000)
    .option('--seed <n>', 'random seed of the signals', intArg, 1)
    .option('--broker <url>', 'MQTT URL instead of the one enrollment returns')
    .option('--jwt-lifetime <duration>', 'lifetime of each device JWT (default 1h)', durationArg),
).action(async (opts: FleetOptions) => {
  let scenario: Scenario;
  try {
    scenario = fleetScenario({
      server: opts.server,
      devices: opts.devices,
      rate: opts.rate,
      batch: opts.batch,
      batchIntervalMs: opts.batchInterval,
      prefix: opts.prefix,
      unsigned: opts.unsigned === true,
      metrics: opts.metrics === undefined ? DEFAULT_FLEET_METRICS : metricFlags(opts.metrics),
      window: opts.window,
      maxPending: opts.maxPending,
      seed: opts.seed,
      broker: opts.broker,
      jwtLifetimeMs: opts.jwtLifetime,
    });
  } catch (err) {
    fail(err);
  }
  if (opts.adminToken === undefined) fail('--admin-token (or OUTPOST_ADMIN_TOKEN) is required');
  await runMqtt(scenario, opts, mqttFleetOptions(opts, process.cwd()));
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
