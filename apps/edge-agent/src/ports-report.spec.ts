import { describe, expect, it } from 'vitest';
import { formatPorts, portBindings } from './ports-report.js';
import { sourceConfigSchema } from './sources/source-config.js';

const sources = [
  { serial: { port: '/dev/serial/by-id/usb-FTDI_A10K3Z-if00-port0', device: 'boiler-7' } },
  { serial: { match: { vendorId: '10C4', productId: 'ea60' }, device: 'pump-2', parser: 'kv' } },
  { serial: { port: '/dev/ttyACM0', device: 'meter-1' } },
].map((s) => sourceConfigSchema.parse(s));

describe('outpost-agent ports', () => {
  it('shows which source each port is bound to: by path, by-id link or USB ids', async () => {
    const ports = [
      {
        path: '/dev/ttyUSB0',
        byId: '/dev/serial/by-id/usb-FTDI_A10K3Z-if00-port0',
        vendorId: '0403',
        productId: '6001',
        serialNumber: 'A10K3Z',
        manufacturer: 'FTDI',
      },
      { path: '/dev/ttyUSB1', vendorId: '10c4', productId: 'ea60', serialNumber: '0001' },
      { path: '/dev/ttyACM0' },
      { path: '/dev/ttyS0' },
    ];
    const bound = await portBindings(ports, sources, async (p) =>
      p.endsWith('port0') ? '/dev/ttyUSB0' : p,
    );
    expect(bound.map((p) => p.boundTo)).toEqual([
      { device: 'boiler-7', parser: 'outpost-line', by: 'path' },
      { device: 'pump-2', parser: 'kv', by: 'match' },
      { device: 'meter-1', parser: 'outpost-line', by: 'path' },
      undefined,
    ]);
    const text = formatPorts(bound);
    expect(text.split('\n')[0]).toMatch(
      /^PATH\s+BY-ID\s+VID:PID\s+SERIAL\s+MANUFACTURER\s+BOUND TO$/,
    );
    expect(text).toContain('boiler-7 (outpost-line, by path)');
    expect(text).toMatch(/\/dev\/ttyUSB1\s+-\s+10c4:ea60\s+0001\s+-\s+pump-2 \(kv, by match\)/);
    expect(formatPorts([])).toBe('no serial ports found\n');
  });
});
