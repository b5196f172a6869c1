import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Leases } from '../cluster/lease.js';
import { LocalLeases } from '../cluster/local-lease.js';
import { loadConfig } from '../config.js';
import { SqliteRegistryStore } from '../registry/sqlite-registry-store.js';
import { type LiveEventMap, LiveEvents } from '../stream/live-events.js';
import { LostSessions } from './lost-sessions.js';

// Real: SqliteRegistryStore on a temp file, LiveEvents. Fake: the shared leases (only
// `shared` is read), the clock.

const T0 = 1_700_000_000_000;

describe('LostSessions', () => {
  let dir: string;
  let store: SqliteRegistryStore;
  let live: LiveEvents;
  let events: LiveEventMap['status'][0][];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-lost-sessions-'));
    store = new SqliteRegistryStore(join(dir, 'registry.db'));
    await store.migrate();
    await store.insertDevices(
      ['a', 'b', 'c'].map((id) => ({ id, kind: 'device' as const })),
      T0,
    );
    await store.recordConnectivity([
      { deviceId: 'a', online: true, lastSeen: T0 + 1, disconnectReason: null, replica: 'r1' },
      { deviceId: 'b', online: true, lastSeen: T0 + 2, disconnectReason: null, replica: 'r2' },
    ]);
    live = new LiveEvents();
    events = [];
    live.on('status', (e) => events.push(e));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const sessions = (leases: Leases) =>
    new LostSessions(
      loadConfig({ INGEST_DATA_DIR: dir, INGEST_REPLICA_ID: 'r1' }),
      { now: () => T0 + 1000 },
      pino({ level: 'silent' }),
      store,
      leases,
      live,
    );
  const shared: Leases = {
    holder: 'r1/run',
    shared: true,
    lease: () => {
      throw new Error('no lease expected');
    },
    close: async () => {},
  };

  it('alone: records every online device offline at start, announced at its last sign of life', async () => {
    await sessions(new LocalLeases('r1')).serverStarted();
    expect(events).toEqual([
      { deviceId: 'a', online: false, reason: 'server_restart', at: T0 + 1 },
      { deviceId: 'b', online: false, reason: 'server_restart', at: T0 + 2 },
    ]);
    expect((await store.getDevice('b'))?.connectivity).toEqual({
      online: false,
      lastSeen: T0 + 2,
      disconnectReason: 'server_restart',
    });
  });

  it("with a shared registry: only this replica's devices at start, another's once it is lost", async () => {
    const lost = sessions(shared);
    await lost.serverStarted();
    expect(events).toEqual([
      { deviceId: 'a', online: false, reason: 'server_restart', at: T0 + 1 },
    ]);
    expect((await store.getDevice('b'))?.connectivity.online).toBe(true);
    await lost.replicaLost('r2');
    expect(events.at(-1)).toEqual({
      deviceId: 'b',
      online: false,
      reason: 'replica_lost',
      at: T0 + 2,
    });
    // Nothing left: nothing announced.
    await lost.replicaLost('r2');
    expect(events).toHaveLength(2);
  });
});
