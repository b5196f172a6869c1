import { describe, expect, it } from 'vitest';
import type { ConnectivityState, Outbox } from '../api/types.js';
import { applyStatus, type FleetEntry, tally } from './fleet-counts.js';

const outbox = (pending: number, oldestS = 0): Outbox => ({
  pending,
  bytes: pending * 10,
  oldestS,
  dropped: 0,
});
const e = (state: ConnectivityState, o: Outbox | null = null): FleetEntry => ({ state, outbox: o });
const status = (online: boolean) => ({
  deviceId: 'd',
  online,
  reason: null,
  at: '2026-01-01T00:00:00Z',
});

describe('fleet counts', () => {
  it('counts each state, and the readings buffering devices hold', () => {
    const c = tally([
      e('online'),
      e('online', outbox(5)),
      e('offline'),
      e('buffering', outbox(100, 30)),
      e('buffering', outbox(50, 600)),
      e('never_connected'),
      e('revoked'),
    ]);
    expect(c).toEqual({
      total: 7,
      online: 2,
      offline: 1,
      buffering: 2,
      neverConnected: 1,
      revoked: 1,
      pendingReadings: 150,
      oldestPendingS: 600,
    });
    expect(tally([]).oldestPendingS).toBeNull();
  });

  it('moves a device on status events: offline with a full outbox is buffering', () => {
    expect(applyStatus(e('offline'), status(true)).state).toBe('online');
    expect(applyStatus(e('online'), status(false)).state).toBe('offline');
    expect(applyStatus(e('online', outbox(3)), status(false)).state).toBe('buffering');
    expect(applyStatus(undefined, status(true)).state).toBe('online');
    expect(applyStatus(e('revoked'), status(true)).state).toBe('revoked');
  });
});
