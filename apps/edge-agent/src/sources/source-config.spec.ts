import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  mqttSourceConfigSchema,
  serialSourceConfigSchema,
  sourcesConfigSchema,
} from './source-config.js';

describe('sources: (agent.yaml)', () => {
  it('reads the SURFACES.md example with defaults filled in', () => {
    const sources = sourcesConfigSchema.parse(
      parseYaml(`
- serial:
    port: /dev/serial/by-id/usb-FTDI_FT232R_A10K3Z-if00-port0
    baudRate: 115200
    parser: outpost-line
    device: boiler-7
- serial:
    match: { vendorId: '0403', productId: '6001', serialNumber: A10K3Z }
    parser: { type: csv, header: [t, h], units: { t: Cel } }
    device: boiler-8
    silentAfter: 10s
- mqtt:
    listen: 0.0.0.0:1883
    users: [{ username: sensors, password: s3cret }]
`),
    );
    expect(sources[0]).toEqual({
      kind: 'serial',
      serial: {
        port: '/dev/serial/by-id/usb-FTDI_FT232R_A10K3Z-if00-port0',
        baudRate: 115_200,
        dataBits: 8,
        stopBits: 1,
        parity: 'none',
        parser: { type: 'outpost-line', units: {} },
        device: 'boiler-7',
        silentAfter: 30_000,
        identify: true,
        identifyEvery: 2_000,
        reconnect: { initial: 250, max: 30_000, factor: 2, jitter: 0.2 },
      },
    });
    expect(sources[1]).toMatchObject({
      kind: 'serial',
      serial: { identify: false, silentAfter: 10_000, parser: { type: 'csv', delimiter: ',' } },
    });
    expect(sources[2]).toMatchObject({
      kind: 'mqtt',
      mqtt: {
        listen: { host: '0.0.0.0', port: 1883 },
        allowAnonymous: false,
        maxPayloadBytes: 65_536,
        topics: [
          { filter: 'sensors/+/senml', payload: 'senml' },
          { filter: 'sensors/+/+', metric: '{2}', payload: 'number' },
        ],
      },
    });
  });

  it.each([
    ['neither port nor match', { device: 'd' }],
    ['both', { device: 'd', port: '/dev/x', match: { vendorId: '1', productId: '2' } }],
    ['no device', { port: '/dev/x' }],
    ['a bad device id', { port: '/dev/x', device: 'Boiler' }],
    ['an unknown parser', { port: '/dev/x', device: 'd', parser: 'xml' }],
    ['a csv parser without header', { port: '/dev/x', device: 'd', parser: 'csv' }],
    ['a bad duration', { port: '/dev/x', device: 'd', silentAfter: 'soon' }],
    ['a bad USB id', { match: { vendorId: 'xyz', productId: '1' }, device: 'd' }],
    ['max < initial', { port: '/dev/x', device: 'd', reconnect: { initial: '10s', max: '1s' } }],
  ])('refuses a serial source with %s', (_why, config) => {
    expect(serialSourceConfigSchema.safeParse(config).success).toBe(false);
  });

  it.each([
    ['a listener open to anyone unless allowed', { listen: '0.0.0.0:1883' }],
    ['no port', { listen: '0.0.0.0' }],
    ['a port out of range', { listen: 'h:70000', allowAnonymous: true }],
    ['both listen and connect', { listen: 'h:1', connect: 'mqtt://x', allowAnonymous: true }],
    ['a non-MQTT URL', { connect: 'http://x' }],
    ['users with connect', { connect: 'mqtt://x', users: [{ username: 'a', password: 'b' }] }],
    ['an empty topic list', { listen: 'h:1', allowAnonymous: true, topics: [] }],
  ])('refuses an mqtt source with %s', (_why, config) => {
    expect(mqttSourceConfigSchema.safeParse(config).success).toBe(false);
  });

  it('reads IPv6 listen addresses', () => {
    expect(
      mqttSourceConfigSchema.parse({ listen: '[::1]:0', allowAnonymous: true }).listen,
    ).toEqual({
      host: '::1',
      port: 0,
    });
  });

  it('lists every error with its path', () => {
    const result = sourcesConfigSchema.safeParse([
      { serial: { port: '/dev/x', device: 'BAD', baudRate: -1 } },
      { mqtt: { listen: 'nope' } },
      { serial: {}, mqtt: {} },
    ]);
    expect(result.success).toBe(false);
    const paths = result.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(
      expect.arrayContaining(['0.serial.device', '0.serial.baudRate', '1.mqtt.listen']),
    );
  });
});
