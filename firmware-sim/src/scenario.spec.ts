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

describe('MQTT devices in scenarios', () => {
  const MQTT = `
name: site
seed: 5
server: http://127.0.0.1:8080
devices:
  - id: pump-1
    transport: mqtt
    enroll: true
    rate: 20
    batch: { size: 50, interval: 500ms }
    clockSkew: -90s
    metrics: { flow: 'sine:12:3:5m', p: 'const:2' }
  - { id: pump-2, transport: mqtt, mode: direct, enrollmentToken: tok.en.x, signing: false, server: 'https://ingest.example', window: 2, maxPending: 500, metrics: { flow: 'const:1' } }
  - { id: meter-1, transport: mqtt, credentials: creds/meter-1, broker: 'mqtts://ingest.example:8883', jwtLifetime: 10m, metrics: { kwh: 'const:1' } }
  - { id: meter-2, transport: mqtt, privateKey: keys/m2.json, jwks: keys/jwks.json, audience: plant, broker: 'mqtt://127.0.0.1:1883', metrics: { kwh: 'const:1' } }
  - id: room-1
    transport: mqtt
    mode: local
    broker: mqtt://127.0.0.1:1884
    username: sensors
    password: secret
    qos: 0
    metrics: { t: 'const:21' }
  - { id: room-2, transport: mqtt, mode: local, broker: 'mqtt://127.0.0.1:1884', payload: json, topic: 'site/{device}/climate', timeField: null, clientId: r2, metrics: { t: 'const:21' } }
  - { id: room-3, transport: mqtt, mode: local, broker: 'mqtt://127.0.0.1:1884', payload: senml, metrics: { t: 'const:21' } }
faults:
  - { at: 1s, unplug: { for: 2s } }
  - { at: 2s, device: pump-1, badBatch: 2 }
  - { at: 3s, badBatch: 1 }
  - { at: 4s, clockSkew: { by: 30s } }
`;

  it('reads direct and local devices with their defaults', () => {
    const scenario = parseScenario(MQTT);
    const byId = Object.fromEntries(scenario.devices.map((d) => [d.id, d]));
    expect(byId['pump-1']).toEqual({
      id: 'pump-1',
      identity: { hardware: 'sim-mqtt', serial: 'pump-1', version: '1.0.0' },
      transport: 'mqtt',
      link: {
        mode: 'direct',
        credentials: { kind: 'enroll' },
        server: 'http://127.0.0.1:8080',
        broker: undefined,
        signed: true,
        batchSize: 50,
        batchIntervalMs: 500,
        jwtLifetimeS: 3600,
      },
      ratePerS: 20,
      seed: 5,
      metrics: [
        { name: 'flow', signal: { shape: { kind: 'sine', base: 12, amplitude: 3, periodS: 300 } } },
        { name: 'p', signal: { shape: { kind: 'constant', value: 2 } } },
      ],
      clockSkewMs: -90_000,
      window: 8,
      maxPendingReadings: 10_000,
    });
    expect(byId['pump-2']).toMatchObject({
      link: {
        credentials: { kind: 'token', token: 'tok.en.x' },
        server: 'https://ingest.example',
        signed: false,
        batchSize: 100,
        batchIntervalMs: 1000,
      },
      window: 2,
      maxPendingReadings: 500,
    });
    expect(byId['meter-1']).toMatchObject({
      link: {
        credentials: { kind: 'credentials', dir: 'creds/meter-1' },
        broker: 'mqtts://ingest.example:8883',
        jwtLifetimeS: 600,
      },
    });
    expect(byId['meter-2']!.link).toMatchObject({
      credentials: {
        kind: 'key',
        file: 'keys/m2.json',
        jwksFile: 'keys/jwks.json',
        audience: 'plant',
      },
    });
    expect(byId['room-1']!.link).toEqual({
      mode: 'local',
      broker: 'mqtt://127.0.0.1:1884',
      clientId: 'room-1',
      username: 'sensors',
      password: 'secret',
      format: { topic: 'sensors/{device}/{metric}', payload: 'number', timeField: 'time' },
      qos: 0,
    });
    expect(byId['room-2']!.link).toMatchObject({
      clientId: 'r2',
      format: { topic: 'site/{device}/climate', payload: 'json', timeField: undefined },
      qos: 1,
    });
    expect(byId['room-3']!.link).toMatchObject({
      format: { topic: 'sensors/{device}/senml', payload: 'senml' },
    });
  });

  it('sends each fault only to the devices that take it', () => {
    const scenario = parseScenario(MQTT);
    const all = ['pump-1', 'pump-2', 'meter-1', 'meter-2', 'room-1', 'room-2', 'room-3'];
    const direct = ['pump-1', 'pump-2', 'meter-1', 'meter-2'];
    expect(scenario.faults.map((f) => [f.atMs, f.devices, f.fault])).toEqual([
      [1000, all, { kind: 'unplug', forMs: 2000 }],
      [2000, ['pump-1'], { kind: 'badBatch', batches: 2 }],
      [3000, direct, { kind: 'badBatch', batches: 1 }],
      [4000, all, { kind: 'clockSkew', byMs: 30_000 }],
    ]);
  });

  it('accepts the example MQTT scenario', async () => {
    const path = new URL('../scenarios/direct-fleet.yaml', import.meta.url);
    const scenario = parseScenario(await readFile(path, 'utf8'), 'direct-fleet');
    expect(scenario.devices.every((d) => d.transport === 'mqtt')).toBe(true);
    expect(scenario.faults.length).toBeGreaterThan(0);
  });

  it('lists every problem of MQTT devices with its path', () => {
    const bad = `
devices:
  - { id: a, transport: mqtt, metrics: { t: 'const:1' } }
  - { id: b, transport: mqtt, enroll: true, credentials: dir, metrics: { t: 'const:1' } }
  - { id: c, transport: mqtt, privateKey: k.json, metrics: { t: 'const:1' } }
  - { id: d, transport: mqtt, enroll: true, jwks: j.json, batch: { size: 3000 }, metrics: { t: 'const:1', h: 'const:1' } }
  - { id: e, transport: mqtt, mode: local, broker: 'mqtt://h:1', topic: 'x/{device}', metrics: { t: 'const:1' } }
  - { id: f, transport: mqtt, mode: local, broker: 'mqtt://h:1', payload: json, password: p, metrics: { time: 'const:1' } }
  - { id: g, transport: mqtt, enroll: true, broker: 'http://h', server: 'mqtt://h', clockSkew: soon, jwtLifetime: 25h, metrics: { t: 'const:1' } }
  - { id: h, transport: mqtt, mode: remote, metrics: { t: 'const:1' } }
  - { id: i, transport: radio, metrics: { t: 'const:1' } }
  - { id: j, transport: mqtt, mode: local, broker: 'mqtt://h:1', batch: { size: 1 }, metrics: { t: 'const:1' } }
`;
    const issues = issuesOf(() => parseScenario(bad));
    const message = (path: string) => issues.find((i) => i.path === path)?.message;
    expect(message('devices[6].broker')).toMatch(/mqtt:\/\//);
    expect(message('devices[6].server')).toMatch(/http:\/\//);
    expect(message('devices[6].clockSkew')).toMatch(/duration/);
    expect(message('devices[6].jwtLifetime')).toMatch(/at most 24h/);
    expect(message('devices[7].mode')).toMatch(/direct or local/);
    expect(message('devices[8].transport')).toMatch(/serial or mqtt/);
    expect(message('devices[9]')).toMatch(/unknown key batch/);
    // Cross-entry checks come once every entry is well-formed.
    const good = bad.split('\n').slice(0, 8).join('\n');
    expect(issuesOf(() => parseScenario(good))).toEqual([
      {
        path: 'devices[0]',
        message:
          'needs exactly one of enroll: true, enrollmentToken, credentials, privateKey (got none)',
      },
      {
        path: 'devices[1]',
        message:
          'needs exactly one of enroll: true, enrollmentToken, credentials, privateKey (got enroll, credentials)',
      },
      { path: 'devices[2].broker', message: 'a device given privateKey needs broker' },
      { path: 'devices[3].jwks', message: 'goes with privateKey' },
      {
        path: 'devices[3].batch.size',
        message: '3000 readings of 2 metrics are over 5000 records',
      },
      { path: 'devices[4].topic', message: 'a number payload needs {metric} in the topic' },
      { path: 'devices[5].password', message: 'goes with username' },
      { path: 'devices[5].timeField', message: '"time" is also a metric' },
    ]);
  });

  it('refuses faults a targeted device does not take, or that no device takes', () => {
    const bad = `
devices:
  - { id: s, serial: S1, hardware: h, firmware: '1', pty: true, metrics: { t: 'const:1' } }
  - { id: m, transport: mqtt, enroll: true, metrics: { t: 'const:1' } }
  - { id: l, transport: mqtt, mode: local, broker: 'mqtt://h:1', metrics: { t: 'const:1' } }
faults:
  - { at: 1s, device: m, garbage: 1 }
  - { at: 1s, device: s, badBatch: 1 }
  - { at: 1s, device: l, badBatch: 1 }
  - { at: 1s, flash: { slowMs: 1 } }
`;
    expect(issuesOf(() => parseScenario(bad))).toEqual([
      { path: 'faults[0].garbage', message: 'device "m" (mqtt direct) takes no garbage fault' },
      { path: 'faults[1].badBatch', message: 'device "s" (serial) takes no badBatch fault' },
      { path: 'faults[2].badBatch', message: 'device "l" (mqtt local) takes no badBatch fault' },
    ]);
    const onlyMqtt = `
devices:
  - { id: m, transport: mqtt, enroll: true, metrics: { t: 'const:1' } }
faults:
  - { at: 1s, partialLine: 1 }
`;
    expect(issuesOf(() => parseScenario(onlyMqtt))).toEqual([
      { path: 'faults[0].partialLine', message: 'no device of the scenario takes it' },
    ]);
  });
});
