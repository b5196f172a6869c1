import { describe, expect, it } from 'vitest';
import { MAX_STATE_COMPONENTS, MAX_STATE_PORTS } from './limits.js';
import { reportedStateSchema } from './state.js';

const gatewayState = {
  v: 1,
  firmware: { version: '1.4.2', components: { main: '1.4.2', radio: '0.9.1' } },
  agent: { version: '0.3.0' },
  uptime_s: 123,
  outbox: { pending: 12, bytes: 4096, oldest_s: 10_800, dropped: 0 },
  ports: [
    { path: '/dev/ttyUSB0', state: 'open' },
    { path: '/dev/ttyACM0', state: 'silent' },
  ],
  config_version: 7,
};

describe('reportedStateSchema (PROTOCOL.md §6)', () => {
  it("accepts a gateway's full report", () => {
    expect(reportedStateSchema.parse(gatewayState)).toEqual(gatewayState);
  });

  it("accepts a plain device's report", () => {
    const state = { v: 1, firmware: { version: 'r2-2024.05' }, uptime_s: 5.5 };
    expect(reportedStateSchema.parse(state)).toEqual(state);
  });

  it.each([
    ['v 2', { v: 2 }, 'v'],
    ['no firmware', { firmware: undefined }, 'firmware'],
    ['an empty firmware version', { firmware: { version: '' } }, 'firmware.version'],
    ['a negative uptime', { uptime_s: -1 }, 'uptime_s'],
    [
      'a fractional pending count',
      { outbox: { ...gatewayState.outbox, pending: 1.5 } },
      'outbox.pending',
    ],
    ['an unknown port state', { ports: [{ path: '/dev/x', state: 'closed' }] }, 'ports.0.state'],
    [
      'a bad component name',
      { firmware: { version: '1', components: { 'Main!': '1' } } },
      'firmware.components.Main!',
    ],
    ['a NUL in a port path', { ports: [{ path: '/dev/\u0000', state: 'open' }] }, 'ports.0.path'],
    ['a negative config version', { config_version: -1 }, 'config_version'],
  ])('refuses %s at %s', (_what, change, path) => {
    const result = reportedStateSchema.safeParse({ ...gatewayState, ...change });
    expect(result.error?.issues[0]?.path.join('.')).toBe(path);
  });

  it('bounds components and ports', () => {
    const components = Object.fromEntries(
      Array.from({ length: MAX_STATE_COMPONENTS + 1 }, (_, i) => [`c${i}`, '1.0.0']),
    );
    const tooManyComponents = { ...gatewayState, firmware: { version: '1', components } };
    expect(reportedStateSchema.safeParse(tooManyComponents).success).toBe(false);
    const ports = Array.from({ length: MAX_STATE_PORTS + 1 }, (_, i) => ({
      path: `/dev/ttyUSB${i}`,
      state: 'open',
    }));
    expect(reportedStateSchema.safeParse({ ...gatewayState, ports }).success).toBe(false);
  });
});
