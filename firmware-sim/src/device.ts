import type { ReadingValue } from '@outpost/protocol/serial-line';
import type { BootloaderStats, FlashSettings } from './bootloader.js';
import { deriveSeed, mulberry32 } from './random.js';
import { Signal, type SignalSpec } from './signals.js';

/**
 * A simulated device, whatever its transport. The scenario runner drives devices only
 * through this interface: serial devices (serial-device.ts) speak PROTOCOL.md §10 lines on
 * a pty; MQTT devices implement the same interface and publish §5 batches instead.
 */
export interface Device {
  readonly id: string;
  start(): Promise<void>;
  /** Stops sending, waits for writes in flight, and closes the transport. */
  stop(): Promise<void>;
  inject(fault: DeviceFault): void;
  stats(): DeviceStats;
}

/** Faults a scenario injects into a running device. */
export type DeviceFault =
  /** Lines of random bytes. */
  | { kind: 'garbage'; lines: number }
  /** Readings with a wrong checksum; not counted as sent. */
  | { kind: 'badCrc'; lines: number }
  /** Readings cut before their checksum, then ended; not counted as sent. */
  | { kind: 'partialLine'; lines: number }
  /** The device says nothing and hears nothing, like a hung controller. */
  | { kind: 'silence'; forMs: number }
  /** The device disappears from the bus, then comes back. */
  | { kind: 'unplug'; forMs: number }
  /** The device's clock runs `byMs` off (timestamps of MQTT devices; serial lines have none). */
  | { kind: 'clockSkew'; byMs: number }
  /** One metric repeats its last value. */
  | { kind: 'stuck'; metric: string; forMs: number }
  /** Changes how the device's flash behaves from now on. */
  | { kind: 'flash'; flash: FlashSettings };

/** What a device did, as exact counts, so tests can compare what was sent with what was stored. */
export interface DeviceStats {
  id: string;
  transport: string;
  hardware: string;
  serial: string;
  version: string;
  /** Per metric: values in readings that reached the transport (the write callback). */
  sent: Record<string, number>;
  /** Reading lines (or messages) that reached the transport. */
  readings: number;
  garbageLines: number;
  badCrcLines: number;
  partialLines: number;
  /** Readings due while the device could not send (unplugged, silenced, rebooting, backed up). */
  skipped: number;
  writeErrors: number;
  /** Times the transport was (re)opened. */
  opens: number;
  connected: boolean;
  clockSkewMs: number;
  firmware: BootloaderStats;
}

export interface MetricSpec {
  name: string;
  signal: SignalSpec;
}

/**
 * The values of a device's metrics over time: one {@link Signal} per metric, each with its
 * own random stream derived from the device seed and the metric name, so adding a metric
 * does not change the others.
 */
export class ReadingSource {
  readonly #signals: [string, Signal][];

  constructor(metrics: readonly MetricSpec[], seed: number) {
    this.#signals = metrics.map((m) => [
      m.name,
      new Signal(m.signal, mulberry32(deriveSeed(seed, m.name))),
    ]);
  }

  get metrics(): string[] {
    return this.#signals.map(([name]) => name);
  }

  /** One reading at `tS` seconds since the device started. */
  sample(tS: number): ReadingValue[] {
    return this.#signals.map(([name, signal]) => [name, signal.sample(tS)]);
  }

  /** Stuck-at fault on one metric; false if the device has no such metric. */
  stick(metric: string, fromS: number, forS: number): boolean {
    const found = this.#signals.find(([name]) => name === metric);
    found?.[1].stick(fromS, forS);
    return found !== undefined;
  }
}

export interface FleetStats {
  scenario: string | undefined;
  /** Milliseconds since the fleet started. */
  elapsedMs: number;
  devices: Record<string, DeviceStats>;
  totals: {
    /** Per metric name, over all devices. */
    sent: Record<string, number>;
    readings: number;
    garbageLines: number;
    badCrcLines: number;
    partialLines: number;
    skipped: number;
  };
}

export function summarize(
  scenario: string | undefined,
  elapsedMs: number,
  devices: readonly DeviceStats[],
): FleetStats {
  const totals: FleetStats['totals'] = {
    sent: {},
    readings: 0,
    garbageLines: 0,
    badCrcLines: 0,
    partialLines: 0,
    skipped: 0,
  };
  const byId: Record<string, DeviceStats> = {};
  for (const d of devices) {
    byId[d.id] = d;
    for (const [metric, n] of Object.entries(d.sent)) {
      totals.sent[metric] = (totals.sent[metric] ?? 0) + n;
    }
    totals.readings += d.readings;
    totals.garbageLines += d.garbageLines;
    totals.badCrcLines += d.badCrcLines;
    totals.partialLines += d.partialLines;
    totals.skipped += d.skipped;
  }
  return { scenario, elapsedMs, devices: byId, totals };
}
