import { setTimeout as sleep } from 'node:timers/promises';
import { type FleetStats, summarize } from './device.js';
import { scheduleFaults } from './fault-schedule.js';
import type { Scenario, SerialDeviceConfig } from './scenario.js';
import { SerialDevice, type SerialDeviceEvent } from './serial-device.js';
import { SocatPty } from './socat-pty.js';

export interface SerialFleetOptions {
  /** Where pty links are made for devices with `pty: true`. */
  ptyDir: string;
  socat?: string;
  now?: () => number;
  onEvent?: (deviceId: string, event: SerialDeviceEvent) => void;
}

export interface SerialFleet {
  readonly devices: readonly SerialDevice[];
  /** Per device id: the path the application (the edge agent) opens. */
  readonly appPaths: Readonly<Record<string, string>>;
  stats(): FleetStats;
  /** Stops the devices (waiting for writes in flight), then their pty pairs. Idempotent. */
  stop(): Promise<void>;
}

/** Runs a scenario's serial devices and injects their faults on schedule (MQTT: mqtt-fleet.ts). */
export async function startSerialFleet(
  scenario: Scenario,
  options: SerialFleetOptions,
): Promise<SerialFleet> {
  const now = options.now ?? Date.now;
  const ptys: SocatPty[] = [];
  const devices: SerialDevice[] = [];
  const appPaths: Record<string, string> = {};
  let cancelFaults = () => {};
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      cancelFaults();
      await Promise.all(devices.map((d) => d.stop()));
      // socat has read the last bytes (the devices drained); give it, and whoever reads the
      // other end, time to pass them on before the link goes: bytes socat still holds when
      // it is killed are lost, though counted as sent.
      if (ptys.length > 0) await sleep(1000);
      await Promise.all(ptys.map((p) => p.stop()));
    })();
    return stopping;
  };

  try {
    const configs = scenario.devices.filter(
      (d): d is SerialDeviceConfig => d.transport === 'serial',
    );
    for (const config of configs) {
      let path: string;
      let pty: SocatPty | undefined;
      if (config.link.kind === 'pty') {
        pty = await SocatPty.start(options.ptyDir, config.id, options.socat);
        ptys.push(pty);
        path = pty.devicePath;
        appPaths[config.id] = pty.appPath;
      } else {
        path = config.link.path;
      }
      const device = new SerialDevice(config, {
        path,
        now,
        ...(pty === undefined ? {} : { link: pty }),
        ...(options.onEvent === undefined
          ? {}
          : { onEvent: (event: SerialDeviceEvent) => options.onEvent?.(config.id, event) }),
      });
      devices.push(device);
    }
    await Promise.all(devices.map((d) => d.start()));
  } catch (err) {
    await stop();
    throw err;
  }

  const startedAt = now();
  cancelFaults = scheduleFaults(scenario.faults, devices);

  return {
    devices,
    appPaths,
    stats: () =>
      summarize(
        scenario.name,
        now() - startedAt,
        devices.map((d) => d.stats()),
      ),
    stop,
  };
}
