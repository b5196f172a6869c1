import { reportedStateSchema } from '@outpost/protocol/state';
import { describe, expect, it } from 'vitest';
import { type OutboxStats, zeroCounters } from '../outbox/outbox.js';
import type { PortStatus } from '../sources/source.js';
import { buildChildStates, buildReportedState } from './reported-state.js';

const outbox = (over: Partial<OutboxStats> = {}): OutboxStats => ({
  pending: 0,
  records: 0,
  bytes: 0,
  oldestMs: undefined,
  quarantined: 0,
  quarantinedRecords: 0,
  maxBytes: 1024,
  whenFull: 'drop-oldest',
  counters: zeroCounters(),
  ...over,
});

describe('buildReportedState', () => {
  it('reports outbox records, bytes, age of the oldest and what was lost, per PROTOCOL.md §6', () => {
    const now = Date.UTC(2025, 5, 1, 12);
    const state = buildReportedState({
      agentVersion: '0.1.0',
      uptimeS: 123.7,
      outbox: outbox({
        pending: 3,
        records: 1500,
        bytes: 42_000,
        oldestMs: now - 3 * 3600_000,
        counters: {
          ...zeroCounters(),
          droppedRecords: 7,
          rejectedRecords: 5,
          downsampledRecords: 99,
        },
      }),
      ports: [
        { path: '/dev/serial/by-id/usb-a', state: 'open' },
        { path: 'usb:0403:6001', state: 'missing' },
      ],
      configVersion: 4,
      nowMs: now,
    });
    expect(state).toEqual({
      v: 1,
      firmware: { version: '0.1.0' },
      agent: { version: '0.1.0' },
      uptime_s: 123,
      outbox: { pending: 1500, bytes: 42_000, oldest_s: 10_800, dropped: 12 },
      ports: [
        { path: '/dev/serial/by-id/usb-a', state: 'open' },
        { path: 'usb:0403:6001', state: 'missing' },
      ],
      config_version: 4,
    });
    expect(reportedStateSchema.safeParse(state).success).toBe(true);
  });

  it('never reports a negative age when the clock was set back', () => {
    const state = buildReportedState({
      agentVersion: '0.1.0',
      firmwareVersion: 'debian-12',
      uptimeS: 1,
      outbox: outbox({ records: 1, oldestMs: 2_000_000 }),
      ports: [],
      configVersion: 0,
      nowMs: 1_000_000,
    });
    expect(state.outbox?.oldest_s).toBe(0);
    expect(state.firmware.version).toBe('debian-12');
  });
});

describe('buildChildStates', () => {
  const port = (over: Partial<PortStatus>): PortStatus => ({
    path: '/dev/serial/by-id/a',
    state: 'open',
    device: 'boiler-7',
    lines: 0,
    frames: 0,
    readings: 0,
    badLines: 0,
    badLinesByReason: {},
    reopens: 0,
    ...over,
  });
  const now = Date.UTC(2025, 5, 1, 12);

  it('reports each identified child: the version of its ID line, uptime counted from it', () => {
    const states = buildChildStates(
      [
        port({
          device: 'boiler-7',
          identity: { hardware: 'sim-v1', serial: 'S1', version: '1.2.0' },
          identifiedAt: now / 1000 - 90.5,
        }),
        port({ device: 'pump-2', path: '/dev/serial/by-id/b' }),
      ],
      now,
    );
    expect(states).toEqual([
      { deviceId: 'boiler-7', state: { v: 1, firmware: { version: '1.2.0' }, uptime_s: 90 } },
    ]);
    expect(reportedStateSchema.safeParse(states[0]!.state).success).toBe(true);
  });

  it('takes the port heard from last when two name one device, and never a negative uptime', () => {
    const states = buildChildStates(
      [
        port({
          identity: { hardware: 'sim-v1', serial: 'S1', version: '1.0.0' },
          identifiedAt: now / 1000 - 600,
        }),
        port({
          path: '/dev/serial/by-id/b',
          identity: { hardware: 'sim-v1', serial: 'S1', version: '1.1.0' },
          identifiedAt: now / 1000 + 5,
        }),
      ],
      now,
    );
    expect(states).toEqual([
      { deviceId: 'boiler-7', state: { v: 1, firmware: { version: '1.1.0' }, uptime_s: 0 } },
    ]);
  });
});
