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
  | { kind: 'flash'; flash: FlashSettings }
  /**
   * MQTT direct devices: the next `batches` batches carry a record the service must refuse
   * (PROTOCOL.md §9), so it answers each with `telemetry.rejected`.
   */
  | { kind: 'badBatch'; batches: number };

export type DeviceFaultKind = DeviceFault['kind'];

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
  /** MQTT devices only; for them `sent` and `readings` count acknowledged readings. */
  mqtt?: MqttCounters;
}

/**
 * What an MQTT device did, exactly. A reading counts as acknowledged (and as `sent`) once
 * the broker PUBACKed its batch, which the ingest does only after durable acceptance
 * (PROTOCOL.md §9); so the service stores `ackedReadings - rejectedReadings` readings.
 */
export interface MqttCounters {
  /** Readings made at the device's rate (not those skipped). */
  madeReadings: number;
  /** Readings in batches published at least once. */
  publishedReadings: number;
  /** Readings in batches the broker acknowledged. */
  ackedReadings: number;
  /** Readings in batches the service refused for good (`telemetry.rejected`, verified). */
  rejectedReadings: number;
  /** Made and not yet acknowledged: in the open batch or kept in memory for (re)sending. */
  pendingReadings: number;
  batches: {
    published: number;
    /** Publications of a batch after its first (after a reconnect or an ack timeout). */
    resent: number;
    acked: number;
    rejected: number;
    pending: number;
  };
  /** Connections accepted (CONNACK 0). */
  connects: number;
  /** Connections accepted after the first. */
  reconnects: number;
  /** Connection attempts refused or failed. */
  connectFailures: number;
  /** Connections lost or closed by the broker. */
  disconnects: number;
  /** Planned reconnections with a fresh device JWT before the old one expires. */
  renewals: number;
  /** Sessions reset because a PUBACK did not come in time. */
  ackTimeouts: number;
  commands: {
    received: number;
    /** Refused: bad signature, expired, for another device, or no JWKS to check them. */
    invalid: number;
    /** `telemetry.rejected` naming a batch of this boot. */
    rejected: number;
    /** `telemetry.rejected` naming a batch this device does not know (another boot). */
    unmatched: number;
    ping: number;
    other: number;
  };
}

export function emptyMqttCounters(): MqttCounters {
  return {
    madeReadings: 0,
    publishedReadings: 0,
    ackedReadings: 0,
    rejectedReadings: 0,
    pendingReadings: 0,
    batches: { published: 0, resent: 0, acked: 0, rejected: 0, pending: 0 },
    connects: 0,
    reconnects: 0,
    connectFailures: 0,
    disconnects: 0,
    renewals: 0,
    ackTimeouts: 0,
    commands: { received: 0, invalid: 0, rejected: 0, unmatched: 0, ping: 0, other: 0 },
  };
}

/** Adds `from` into `into`, field by field. */
export function addMqttCounters(into: MqttCounters, from: MqttCounters): void {
  addNumbers(into as unknown as NumberTree, from as unknown as NumberTree);
}

interface NumberTree {
  [key: string]: number | NumberTree;
}

function addNumbers(into: NumberTree, from: NumberTree): void {
  for (const [key, value] of Object.entries(from)) {
    const target = into[key];
    if (typeof value === 'number') into[key] = (typeof target === 'number' ? target : 0) + value;
    else if (typeof target === 'object') addNumbers(target, value);
  }
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
    /** Over the MQTT devices, when there are any; plus how many are connected now. */
    mqtt?: MqttCounters & { devices: number; connected: number };
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
    if (d.mqtt !== undefined) {
      totals.mqtt ??= { ...emptyMqttCounters(), devices: 0, connected: 0 };
      addMqttCounters(totals.mqtt, d.mqtt);
      totals.mqtt.devices++;
      if (d.connected) totals.mqtt.connected++;
    }
  }
  return { scenario, elapsedMs, devices: byId, totals };
}
