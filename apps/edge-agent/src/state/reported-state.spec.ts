import { reportedStateSchema } from '@outpost/protocol/state';
import { describe, expect, it } from 'vitest';
import { type OutboxStats, zeroCounters } from '../outbox/outbox.js';
import { buildReportedState } from './reported-state.js';

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
