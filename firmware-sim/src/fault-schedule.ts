import type { Device } from './device.js';
import type { ScheduledFault } from './scenario.js';

/** Injects a scenario's faults into its devices on schedule; returns a cancel function. */
export function scheduleFaults(
  faults: readonly ScheduledFault[],
  devices: readonly Device[],
): () => void {
  const byId = new Map(devices.map((d) => [d.id, d]));
  const timers = faults.map((scheduled) =>
    setTimeout(() => {
      for (const id of scheduled.devices) byId.get(id)?.inject(scheduled.fault);
    }, scheduled.atMs),
  );
  return () => {
    for (const timer of timers) clearTimeout(timer);
  };
}
