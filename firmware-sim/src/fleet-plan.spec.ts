import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FLEET_METRICS,
  type FleetPlan,
  fleetDeviceIds,
  fleetScenario,
} from './fleet-plan.js';
import { ScenarioError } from './scenario.js';

const PLAN: FleetPlan = {
  server: 'http://127.0.0.1:8080',
  devices: 12,
  rate: 10,
  batch: 100,
  batchIntervalMs: 1000,
  prefix: 'sim-',
  unsigned: false,
  metrics: DEFAULT_FLEET_METRICS,
  window: 8,
  maxPending: 10_000,
  seed: 1,
};

describe('fleet plan', () => {
  it('names devices with a zero-padded index', () => {
    expect(fleetDeviceIds('sim-', 3)).toEqual(['sim-001', 'sim-002', 'sim-003']);
    expect(fleetDeviceIds('load.', 1200).at(-1)).toBe('load.1200');
    expect(fleetDeviceIds('load.', 1200)[0]).toBe('load.0001');
  });

  it('makes N direct devices that the simulator enrolls', () => {
    const scenario = fleetScenario({
      ...PLAN,
      unsigned: true,
      broker: 'mqtt://h:1',
    });
    expect(scenario.name).toBe('fleet');
    expect(scenario.devices).toHaveLength(12);
    expect(scenario.devices[11]).toMatchObject({
      id: 'sim-012',
      transport: 'mqtt',
      ratePerS: 10,
      window: 8,
      link: {
        mode: 'direct',
        credentials: { kind: 'enroll' },
        server: 'http://127.0.0.1:8080',
        broker: 'mqtt://h:1',
        signed: false,
        batchSize: 100,
        batchIntervalMs: 1000,
      },
    });
  });

  it('reports a bad flag once, not once per device', () => {
    try {
      fleetScenario({ ...PLAN, rate: 5000, prefix: 'BAD ' });
    } catch (err) {
      expect(err).toBeInstanceOf(ScenarioError);
      expect((err as ScenarioError).issues.map((i) => i.path)).toEqual([
        'devices[0].id',
        'devices[0].rate',
      ]);
      return;
    }
    throw new Error('expected a ScenarioError');
  });
});
