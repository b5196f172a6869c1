import type { ConnectivityState, Device, Outbox, StatusEvent } from '../api/types.js';

/**
 * The fleet's connectivity, tallied from the device list and kept current by the stream's
 * status events. `buffering` is offline with readings waiting in the device's outbox (its
 * last reported state): those readings arrive late once it reconnects.
 */
export interface FleetEntry {
  state: ConnectivityState;
  outbox: Outbox | null;
}

export interface FleetCounts {
  total: number;
  online: number;
  offline: number;
  buffering: number;
  neverConnected: number;
  revoked: number;
  /** Readings waiting in the outboxes of buffering devices. */
  pendingReadings: number;
  /** The oldest of them, in seconds (as reported). */
  oldestPendingS: number | null;
}

export function entryOf(d: Pick<Device, 'connectivity' | 'outbox'>): FleetEntry {
  return { state: d.connectivity.state, outbox: d.outbox };
}

export function tally(entries: Iterable<FleetEntry>): FleetCounts {
  const c: FleetCounts = {
    total: 0,
    online: 0,
    offline: 0,
    buffering: 0,
    neverConnected: 0,
    revoked: 0,
    pendingReadings: 0,
    oldestPendingS: null,
  };
  for (const e of entries) {
    c.total++;
    switch (e.state) {
      case 'online':
        c.online++;
        break;
      case 'offline':
        c.offline++;
        break;
      case 'buffering':
        c.buffering++;
        if (e.outbox) {
          c.pendingReadings += e.outbox.pending;
          c.oldestPendingS = Math.max(c.oldestPendingS ?? 0, e.outbox.oldestS);
        }
        break;
      case 'never_connected':
        c.neverConnected++;
        break;
      case 'revoked':
        c.revoked++;
        break;
    }
  }
  return c;
}

/**
 * A status event applied to an entry: online, or offline (buffering when its last report
 * had readings waiting). Revoked devices stay revoked. Returns the new entry.
 */
export function applyStatus(entry: FleetEntry | undefined, event: StatusEvent): FleetEntry {
  if (entry?.state === 'revoked') return entry;
  const outbox = entry?.outbox ?? null;
  if (event.online) return { state: 'online', outbox };
  return { state: outbox && outbox.pending > 0 ? 'buffering' : 'offline', outbox };
}
