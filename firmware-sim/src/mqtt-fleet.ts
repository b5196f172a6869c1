import type { BackoffOptions } from './backoff.js';
import { type FleetStats, summarize } from './device.js';
import { scheduleFaults } from './fault-schedule.js';
import { MqttDevice, type MqttDeviceEvent } from './mqtt-device.js';
import type { MqttDeviceConfig, Scenario } from './scenario.js';

export interface MqttFleetOptions {
  /** The service's HTTP URL for devices that enroll; overrides the scenario's. */
  server?: string;
  /** For devices with `enroll: true` (the simulator makes their enrollments). */
  adminToken?: string;
  /** Relative credential paths start here. */
  baseDir?: string;
  /** Devices starting (enrolling) at once, at most; default 16. */
  startConcurrency?: number;
  drainTimeoutMs?: number;
  ackTimeoutMs?: number;
  backoff?: BackoffOptions;
  now?: () => number;
  onEvent?: (deviceId: string, event: MqttDeviceEvent) => void;
}

export interface MqttFleet {
  readonly devices: readonly MqttDevice[];
  stats(): FleetStats;
  /** Stops every device (each drains its unacknowledged batches first). Idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs a scenario's MQTT devices: starts them with bounded concurrency (a direct device
 * may enroll first), then injects the scenario's faults on schedule.
 */
export async function startMqttFleet(
  scenario: Pick<Scenario, 'name' | 'devices' | 'faults'>,
  options: MqttFleetOptions = {},
): Promise<MqttFleet> {
  const now = options.now ?? Date.now;
  const configs = scenario.devices.filter((d): d is MqttDeviceConfig => d.transport === 'mqtt');
  const devices = configs.map((config) => {
    const onEvent = options.onEvent;
    return new MqttDevice(config, {
      identityContext: {
        server: options.server,
        adminToken: options.adminToken,
        baseDir: options.baseDir ?? process.cwd(),
      },
      now,
      ...(options.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: options.drainTimeoutMs }),
      ...(options.ackTimeoutMs === undefined ? {} : { ackTimeoutMs: options.ackTimeoutMs }),
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      ...(onEvent === undefined
        ? {}
        : { onEvent: (event: MqttDeviceEvent) => onEvent(config.id, event) }),
    });
  });
  let cancelFaults = () => {};
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      cancelFaults();
      await Promise.all(devices.map((d) => d.stop()));
    })();
    return stopping;
  };

  try {
    await forEachBounded(devices, options.startConcurrency ?? 16, (d) =>
      d.start().catch((err: Error) => {
        throw new Error(`${d.id}: ${err.message}`, { cause: err });
      }),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const startedAt = now();
  cancelFaults = scheduleFaults(scenario.faults, devices);
  return {
    devices,
    stats: () =>
      summarize(
        scenario.name,
        now() - startedAt,
        devices.map((d) => d.stats()),
      ),
    stop,
  };
}

/** Runs `task` over `items`, at most `limit` at a time; the first failure stops new starts. */
async function forEachBounded<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await task(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  const failure = results.find((r) => r.status === 'rejected');
  if (failure !== undefined) throw (failure as PromiseRejectedResult).reason;
}
