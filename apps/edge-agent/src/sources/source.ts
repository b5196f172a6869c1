import type { ClockQuality, Reading } from '@outpost/protocol/senml';
import type { DeviceIdentity } from '@outpost/protocol/serial-line';
import type { PortState } from '@outpost/protocol/state';

/** Wall-clock time in epoch milliseconds; injected so tests move it by hand. */
export interface Clock {
  now(): number;
}

/** A clock that never jumps (performance.now in production), for timeouts and backoff. */
export type MonotonicClock = () => number;

export type SourceValue = number | boolean | string;

/**
 * One value a source read, attributed to a device. `time` is epoch seconds (fractions
 * allowed): the device's own timestamp when the line or payload carried one, else the
 * injected wall clock at arrival. Clock quality (`cq`) is the agent core's call.
 */
export interface SourceReading {
  device: string;
  metric: string;
  time: number;
  value: SourceValue;
  unit?: string;
}

/** Receives readings in arrival order; called synchronously, never with an empty array. */
export type ReadingSink = (readings: SourceReading[]) => void;

export type { PortState };

/** PROTOCOL.md §6 `ports[]` plus the counters an operator needs to tell why. */
export interface PortStatus {
  /** As configured: a `/dev/serial/by-id/...` path, or `usb:<vid>:<pid>[:<serial>]`. */
  path: string;
  state: PortState;
  /** The child device the readings belong to. */
  device: string;
  /** The device node currently bound (`/dev/ttyUSB1`, `/dev/pts/7`), if any. */
  resolvedPath?: string;
  /** Complete lines received (blank lines not counted). */
  lines: number;
  /** Lines that parsed and carried data. */
  frames: number;
  readings: number;
  badLines: number;
  badLinesByReason: Record<string, number>;
  /** Opens after the first one: unplugs, silent-port reopens. */
  reopens: number;
  /** From the device's answer to `ID?` (PROTOCOL.md §10), if it gave one. */
  identity?: DeviceIdentity;
  /** Wall-clock epoch seconds of the last valid frame. */
  lastFrameAt?: number;
  /**
   * Wall-clock epoch seconds of the last `ID` line: when the device last said who it is,
   * asked after the port opened and sent by itself after a reboot.
   */
  identifiedAt?: number;
  lastError?: string;
}

/** A source of readings the agent starts once and stops at shutdown. */
export interface Source {
  readonly kind: 'serial' | 'mqtt';
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Serial ports for the state report (PROTOCOL.md §6); empty for non-serial sources. */
  status(): PortStatus[];
}

/** A source reading as the batcher takes it (PROTOCOL.md §5 `Reading`). */
export function toReading(
  reading: SourceReading,
  clock: ClockQuality | undefined,
  backfilled = false,
): Reading {
  const out: Reading = {
    deviceId: reading.device,
    metric: reading.metric,
    time: reading.time,
    value: reading.value,
    backfilled,
    clock,
  };
  if (reading.unit !== undefined) out.unit = reading.unit;
  return out;
}
