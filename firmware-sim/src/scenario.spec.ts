import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  expandSignalShorthand,
  formatPath,
  parseScenario,
  ScenarioError,
  type ScenarioIssue,
  scenarioFromObject,
  signalSchema,
} from './scenario.js';

const GOOD = `
name: test-room
seed: 3
duration: 2m
devices:
  - id: th-1
    serial: SN1
    hardware: th-v2
    firmware: 1.0.0
    pty: true
    rate: 2
    metrics:
      t: { signal: sine, base: 20, amplitude: 5, period: 10m, noise: 0.1, drift: 0.001 }
      h: 'const:40,noise=1,min=0,max=100'
    bootloader:
      slowMs: 20
      rebootMs: 300
      maxImageBytes: 65536
      failFlash: { atOffset: 4096, times: 1 }
      failHealth: { after: 2s }
  - id: th-2
    serial: SN2
    hardware: th-v2
    firmware: 1.0.0
    port: /dev/ttyUSB0
    seed: 99
    waitForId: true
    metrics:
      p: { signal: steps, levels: [1, 2], every: 30s, stuck: { from: 1m, for: 10s } }
faults:
  - { at: 30s, unplug: { for: 3s }, device: th-2 }
  - { at: 10s, garbage: 3 }
  - { at: 12s, badCrc: 2, device: th-1 }
  - { at: 14s, partialLine: 1 }
  - { at: 15s, silence: { for: 500ms } }
  - { at: 16s, clockSkew: { by: -90s } }
  - { at: 17s, stuck: { metric: t, for: 5s }, device: th-1 }
  - { at: 18s, flash: { failFlash: verify, slowMs: 0, failHealth: null } }
`;

function issuesOf(run: () => unknown): ScenarioIssue[] {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError);
    return (err as ScenarioError).issues;
  }
  throw new Error('expected a ScenarioError');
}

describe('parseScenario', () => {
  it('reads a good file into typed devices and faults in time order', () => {
    const scenario = parseScenario(GOOD);
    expect(scenario.name).toBe('test-room');
    expect(scenario.durationMs).toBe(120_000);
    const [a, b] = scenario.devices;
    expect(a).toMatchObject({
      id: 'th-1',
      identity: { hardware: 'th-v2', serial: 'SN1', version: '1.0.0' },
      transport: 'serial',
      link: { kind: 'pty' },
      baud: 115_200,
      ratePerS: 2,
      seed: 3,
      bootloader: {
        slowMs: 20,
        rebootMs: 300,
        maxImageBytes: 65536,
        failFlash: { kind: 'write', atOffset: 4096, times: 1 },
        failHealth: { afterMs: 2000 },
      },
    });
    expect(a!.metrics).toEqual([
      {
        name: 't',
        signal: {
          shape: { kind: 'sine', base: 20, amplitude: 5, periodS: 600 },
          noise: 0.1,
          drift: 0.001,
        },
      },
      { name: 'h', signal: { shape: { kind: 'constant', value: 40 }, noise: 1, min: 0, max: 100 } },
    ]);
    expect(b).toMatchObject({
      link: { kind: 'port', path: '/dev/ttyUSB0' },
      ratePerS: 1,
      seed: 99,
    });
    expect(b!.metrics[0]!.signal).toEqual({
      shape: { kind: 'steps', levels: [1, 2], everyS: 30 },
      stuck: { fromS: 60, forS: 10 },
    });
    expect(scenario.faults.map((f) => [f.atMs, f.devices, f.fault])).toEqual([
      [10_000, ['th-1', 'th-2'], { kind: 'garbage', lines: 3 }],
      [12_000, ['th-1'], { kind: 'badCrc', lines: 2 }],
      [14_000, ['th-1', 'th-2'], { kind: 'partialLine', lines: 1 }],
      [15_000, ['th-1', 'th-2'], { kind: 'silence', forMs: 500 }],
      [16_000, ['th-1', 'th-2'], { kind: 'clockSkew', byMs: -90_000 }],
      [17_000, ['th-1'], { kind: 'stuck', metric: 't', forMs: 5000 }],
      [
        18_000,
        ['th-1', 'th-2'],
        { kind: 'flash', flash: { failFlash: { kind: 'verify' }, slowMs: 0, failHealth: null } },
      ],
      [30_000, ['th-2'], { kind: 'unplug', forMs: 3000 }],
    ]);
  });

  it('accepts the example scenarios shipped with the simulator', async () => {
    for (const name of ['boiler-room', 'cold-store']) {
      const path = new URL(`../scenarios/${name}.yaml`, import.meta.url);
      const scenario = parseScenario(await readFile(path, 'utf8'), name);
      expect(scenario.devices.length).toBeGreaterThan(1);
      expect(scenario.faults.length).toBeGreaterThan(0);
    }
  });

  it('lists every structural error with its path', () => {
    const bad = `
seed: 1.5
colour: red
devices:
  - id: TH 1
    serial: ''
    hardware: th-v2
    firmware: 1.0.0
    pty: true
    baud: -9600
    rate: 0
    metrics:
      t: { signal: sine, base: 20, amplitude: five }
      bad name!: 'const:1'
      h: { signal: wave }
      p: 'steps:1/2'
      q: 'sine:1:2:3:4'
      r: { signal: constant, value: 1, spikes: { probability: 2, magnitude: 1 } }
      s: { signal: constant, value: 1, decimals: 1.5 }
    bootloader:
      failFlash: sometimes
      failHealth: { after: soon }
      flashSize: 3
faults:
  - { at: never, garbage: 1 }
  - { at: 1s }
  - { at: 1s, garbage: 1, badCrc: 1 }
  - { at: 1s, unplug: { for: 0s } }
  - { at: 1s, clockSkew: { by: sideways } }
  - { at: 1s, stuck: { metric: t } }
`;
    const issues = issuesOf(() => parseScenario(bad));
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'seed',
        '(root)',
        'devices[0].id',
        'devices[0].serial',
        'devices[0].baud',
        'devices[0].rate',
        'devices[0].metrics.t.amplitude',
        'devices[0].metrics.bad name!',
        'devices[0].metrics.h.signal',
        'devices[0].metrics.p.every',
        'devices[0].metrics.q',
        'devices[0].metrics.r.spikes.probability',
        'devices[0].metrics.s.decimals',
        'devices[0].bootloader.failFlash',
        'devices[0].bootloader.failHealth.after',
        'devices[0].bootloader',
        'faults[0].at',
        'faults[1]',
        'faults[2]',
        'faults[3].unplug.for',
        'faults[4].clockSkew.by',
        'faults[5].stuck.for',
      ]),
    );
    const message = (path: string) => issues.find((i) => i.path === path)?.message;
    expect(message('(root)')).toMatch(/unknown key colour/);
    expect(message('devices[0].bootloader')).toMatch(/unknown key flashSize/);
    expect(message('faults[1]')).toMatch(/exactly one of .* \(got none\)/);
    expect(message('faults[2]')).toMatch(/got garbage, badCrc/);
    expect(message('faults[0].at')).toMatch(/duration/);
    expect(message('devices[0].metrics.q')).toMatch(/at most 3 arguments/);
    expect(message('devices[0].bootloader.failFlash')).toMatch(/verify/);
  });

  it('lists cross-reference errors once entries are well-formed', () => {
    const bad = `
duration: 1m
devices:
  - { id: a, serial: S1, hardware: h, firmware: '1', pty: true, metrics: { t: 'const:1' } }
  - { id: a, serial: S1, hardware: h, firmware: '1', port: /dev/x, metrics: { t: 'const:1' } }
  - { id: b, serial: S2, hardware: h, firmware: '1', port: /dev/x, metrics: { h: 'const:1' } }
  - { id: c, serial: S3, hardware: h, firmware: '1', metrics: { t: 'const:1' } }
  - { id: d, serial: S4, hardware: h, firmware: '1', pty: true, port: /dev/y, metrics: { t: 'const:1' } }
faults:
  - { at: 1s, device: zz, garbage: 1 }
  - { at: 1s, device: b, stuck: { metric: t, for: 1s } }
  - { at: 2m, garbage: 1 }
`;
    const issues = issuesOf(() => parseScenario(bad));
    expect(issues).toEqual([
      { path: 'devices[1].id', message: 'id "a" is also used by devices[0]' },
      { path: 'devices[1].serial', message: 'serial "S1" is also used by devices[0]' },
      { path: 'devices[2].port', message: 'port "/dev/x" is also used by devices[1]' },
      { path: 'devices[3]', message: 'needs either pty: true or port: PATH' },
      { path: 'devices[4]', message: 'needs either pty: true or port: PATH' },
      { path: 'faults[0].device', message: 'no device "zz"' },
      { path: 'faults[1].stuck.metric', message: 'device "b" has no metric "t"' },
      { path: 'faults[2].at', message: 'comes after the scenario ends' },
    ]);
  });

  it('reports YAML syntax errors with line and column', () => {
    const issues = issuesOf(() => parseScenario('devices: [\n  - a: b\n'));
    expect(issues[0]!.path).toBe('(yaml)');
    expect(issues[0]!.message).toMatch(/line \d+, column \d+/);
    const duplicate = issuesOf(() => parseScenario('seed: 1\nseed: 2\n'));
    expect(duplicate[0]!.message).toMatch(/unique/i);
  });

  it('puts every issue in the error message, one per line', () => {
    try {
      scenarioFromObject({ devices: [] }, 'flags');
    } catch (err) {
      expect((err as Error).message).toBe(
        'invalid scenario flags:\n  devices: Too small: expected array to have >=1 items',
      );
      return;
    }
    throw new Error('expected a ScenarioError');
  });
});

describe('signals in the one-line form', () => {
  it('expands to the long form', () => {
    expect(expandSignalShorthand('sine:20:5:10m,noise=0.1,spikes=0.01/8,stuck=30/5')).toEqual({
      signal: 'sine',
      base: 20,
      amplitude: 5,
      period: '10m',
      noise: 0.1,
      spikes: { probability: 0.01, magnitude: 8 },
      stuck: { from: 30, for: 5 },
    });
    expect(signalSchema.parse('steps:1/2.5/-3:10s')).toEqual({
      shape: { kind: 'steps', levels: [1, 2.5, -3], everyS: 10 },
    });
    expect(signalSchema.parse('sine:20:5')).toEqual({
      shape: { kind: 'sine', base: 20, amplitude: 5, periodS: 60 },
    });
  });

  it.each([
    ['wave:1', /unknown signal "wave"/],
    ['const:1:2', /at most 1 arguments/],
    ['const:1,noise', /needs a value/],
    ['const:x', /expected number/],
    ['sine:1', /expected number/],
  ])('refuses %j', (text, message) => {
    const result = signalSchema.safeParse(text);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(message);
  });
});

describe('issue paths', () => {
  it('read like property accesses', () => {
    expect(formatPath(['devices', 0, 'metrics', 't'])).toBe('devices[0].metrics.t');
    expect(formatPath([])).toBe('(root)');
  });
});
