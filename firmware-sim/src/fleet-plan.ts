import { type Scenario, scenarioFromObject } from './scenario.js';

/**
 * The scenario behind `outpost-sim fleet`: N identical direct MQTT devices that the
 * simulator enrolls with the admin token, for load tests. Built as a scenario object, so the
 * flags are validated (and their problems reported) like a scenario file.
 */
export interface FleetPlan {
  server: string;
  devices: number;
  /** Readings per second per device. */
  rate: number;
  /** Readings per batch at most. */
  batch: number;
  batchIntervalMs: number;
  prefix: string;
  unsigned: boolean;
  /** Metric name → signal in the one-line form. */
  metrics: Record<string, string>;
  window: number;
  maxPending: number;
  seed: number;
  /** Overrides the MQTT endpoint enrollment returns. */
  broker?: string | undefined;
  jwtLifetimeMs?: number | undefined;
}

export const DEFAULT_FLEET_METRICS: Record<string, string> = { v: 'sine:20:5:60,noise=0.1' };

/** `sim-001` … : zero-padded so ids sort in order, at least three digits. */
export function fleetDeviceIds(prefix: string, count: number): string[] {
  const width = Math.max(3, String(count).length);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(width, '0')}`);
}

export function fleetScenario(plan: FleetPlan): Scenario {
  const device = {
    transport: 'mqtt',
    mode: 'direct',
    enroll: true,
    rate: plan.rate,
    metrics: plan.metrics,
    batch: { size: plan.batch, interval: `${plan.batchIntervalMs}ms` },
    signing: !plan.unsigned,
    window: plan.window,
    maxPending: plan.maxPending,
    ...(plan.broker === undefined ? {} : { broker: plan.broker }),
    ...(plan.jwtLifetimeMs === undefined ? {} : { jwtLifetime: `${plan.jwtLifetimeMs}ms` }),
  };
  const ids = fleetDeviceIds(plan.prefix, plan.devices);
  const scenario = (devices: string[]) =>
    scenarioFromObject(
      {
        name: 'fleet',
        seed: plan.seed,
        server: plan.server,
        devices: devices.map((id) => ({ id, ...device })),
      },
      'flags',
    );
  // The devices differ only in id: one tells every problem of the flags, once.
  scenario(ids.slice(0, 1));
  return scenario(ids);
}
