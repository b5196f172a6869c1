import { type PostgresHandle, startPostgres } from '@outpost/test-kit/postgres';
import { useServices } from '@outpost/test-kit/vitest';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { StorageUnavailable } from '../src/errors.js';
import { POSTGRES_MIGRATIONS } from '../src/registry/migrations.js';
import { PostgresRegistryStore } from '../src/registry/postgres-registry-store.js';
import {
  expectUpgradedOnlineDevice,
  registryStoreContract,
} from '../src/registry/registry-store.contract.js';
import { DeviceExists } from '../src/registry/registry-store.js';
import { PostgresDatabase } from '../src/storage/postgres-database.js';

// Real: a PostgreSQL server (test-kit), the pg driver. Mocked: nothing.
const services = useServices();
let postgres: PostgresHandle;
let n = 0;

beforeAll(async () => {
  postgres = await services.add(startPostgres());
});

/** A store on a fresh, empty database. */
async function freshStore(migrate = true): Promise<PostgresRegistryStore> {
  const store = new PostgresRegistryStore(await postgres.createDatabase(`reg_${++n}`));
  if (migrate) await store.migrate();
  return store;
}

registryStoreContract('PostgreSQL', () => freshStore());

describe('PostgresRegistryStore', () => {
  it('migrates once when several replicas start at the same moment', async () => {
    const url = await postgres.createDatabase(`reg_${++n}`);
    const replicas = Array.from({ length: 5 }, () => new PostgresRegistryStore(url));
    try {
      await Promise.all(replicas.map((r) => r.migrate()));
      const versions = await postgres.sql(
        'SELECT version FROM schema_migrations ORDER BY version',
        `reg_${n}`,
      );
      expect(versions.trim().split(/\s+/).map(Number)).toEqual(
        POSTGRES_MIGRATIONS.map((m) => m.version),
      );
      expect(await replicas[0]!.countDevices()).toBe(0);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  it('imports 10,000 devices with tags in one call, all or nothing', async () => {
    const store = await freshStore();
    try {
      const devices = Array.from({ length: 10_000 }, (_, i) => ({
        id: `bulk-${String(i).padStart(5, '0')}`,
        kind: 'device' as const,
        tags: { site: `s${i % 7}`, line: `l${i % 3}` },
      }));
      await store.insertDevices(devices, 1);
      expect(await store.countDevices()).toBe(10_000);
      const err = await store
        .insertDevices([{ id: 'new-1', kind: 'device' }, ...devices.slice(0, 150)], 2)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'device_exists' });
      expect(await store.getDevice('new-1')).toBeNull();
      const page = await store.listDevices({ limit: 3, tags: { site: 's0', line: 'l0' } });
      expect(page.items.map((d) => d.id)).toEqual(['bulk-00000', 'bulk-00021', 'bulk-00042']);
    } finally {
      await store.close();
    }
  });

  it('fails overlapping concurrent imports with DeviceExists, never a deadlock', async () => {
    const url = await postgres.createDatabase(`reg_${++n}`);
    const [a, b] = [new PostgresRegistryStore(url), new PostgresRegistryStore(url)];
    try {
      await a.migrate();
      for (let round = 0; round < 5; round++) {
        const devices = Array.from({ length: 300 }, (_, i) => ({
          id: `r${round}-${i}`,
          kind: 'device' as const,
          tags: { site: 'x' },
        }));
        // Opposite orders: without one global insert order each would wait on the other.
        const outcomes = await Promise.allSettled([
          a.insertDevices(devices, 1),
          b.insertDevices([...devices].reverse(), 1),
        ]);
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
        const refused = outcomes.find((o) => o.status === 'rejected');
        expect(refused?.reason).toBeInstanceOf(DeviceExists);
      }
      expect(await a.countDevices()).toBe(1_500);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('applies concurrent connectivity batches in opposite orders without deadlock', async () => {
    const url = await postgres.createDatabase(`reg_${++n}`);
    const [a, b] = [new PostgresRegistryStore(url), new PostgresRegistryStore(url)];
    try {
      await a.migrate();
      const ids = Array.from({ length: 500 }, (_, i) => `c${i}`);
      await a.insertDevices(
        ids.map((id) => ({ id, kind: 'device' as const })),
        1,
      );
      for (let round = 1; round <= 5; round++) {
        const updates = ids.map((deviceId) => ({
          deviceId,
          online: true,
          lastSeen: round,
          disconnectReason: null,
          replica: 'r1',
        }));
        await Promise.all([
          a.recordConnectivity(updates),
          b.recordConnectivity([...updates].reverse()),
        ]);
      }
      // A device listed twice in one batch: the last state wins, last_seen never goes back.
      await a.recordConnectivity([
        { deviceId: 'c0', online: false, lastSeen: 9, disconnectReason: 'network', replica: null },
        {
          deviceId: 'c0',
          online: false,
          lastSeen: 7,
          disconnectReason: 'keepalive',
          replica: null,
        },
      ]);
      expect((await a.getDevice('c0'))?.connectivity).toEqual({
        online: false,
        lastSeen: 9,
        disconnectReason: 'keepalive',
      });
      expect((await a.getDevice('c499'))?.connectivity.lastSeen).toBe(5);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('records a dead replica offline while a survivor records some of its devices online, without deadlock', async () => {
    const url = await postgres.createDatabase(`reg_${++n}`);
    const [a, b] = [new PostgresRegistryStore(url), new PostgresRegistryStore(url)];
    try {
      await a.migrate();
      const ids = Array.from({ length: 500 }, (_, i) => `d${String(i).padStart(3, '0')}`);
      await a.insertDevices(
        ids.map((id) => ({ id, kind: 'device' as const })),
        1,
      );
      const online = (deviceId: string, lastSeen: number, replica: string) => ({
        deviceId,
        online: true,
        lastSeen,
        disconnectReason: null,
        replica,
      });
      await a.recordConnectivity(ids.map((id) => online(id, 1, 'r1')));
      // Every other device reconnected through r2, written in the opposite order to the lock
      // order while r1 is found dead.
      const moved = ids.filter((_, i) => i % 2 === 0);
      const [marked] = await Promise.all([
        a.markReplicaOffline('r1', 'replica_lost'),
        b.recordConnectivity([...moved].reverse().map((id) => online(id, 2, 'r2'))),
      ]);
      // Whichever came first, the moved devices end online and every other one offline.
      const movedSet = new Set(moved);
      const others = ids.filter((id) => !movedSet.has(id));
      expect(marked.map((m) => m.deviceId)).toEqual(expect.arrayContaining(others));
      for (const id of ids) {
        const c = (await a.getDevice(id))?.connectivity;
        if (movedSet.has(id))
          expect(c, id).toEqual({ online: true, lastSeen: 2, disconnectReason: null });
        else
          expect(c, id).toEqual({ online: false, lastSeen: 1, disconnectReason: 'replica_lost' });
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('upgrades a registry from before replicas were recorded, keeping its devices', async () => {
    const name = `reg_${++n}`;
    const url = await postgres.createDatabase(name);
    const old = new PostgresDatabase(url, { poolSize: 1 });
    try {
      await old.migrate({
        table: 'schema_migrations',
        lockId: 1,
        migrations: POSTGRES_MIGRATIONS.slice(0, 1),
      });
      await old.query(
        `INSERT INTO devices (id, kind, status, online, last_seen, created_at, updated_at)
         VALUES ('u1', 'device', 'active', TRUE, 5, 1, 1)`,
      );
    } finally {
      await old.close();
    }
    const store = new PostgresRegistryStore(url);
    try {
      await store.migrate();
      await expectUpgradedOnlineDevice(store);
    } finally {
      await store.close();
    }
  });

  it('pages in byte order, as SQLite does, whatever the database collation', async () => {
    const store = await freshStore();
    try {
      await store.insertDevices(
        ['a1', 'a-2', 'a_3', 'a.4', 'b0'].map((id) => ({ id, kind: 'device' as const })),
        1,
      );
      const p1 = await store.listDevices({ limit: 3 });
      const p2 = await store.listDevices({ limit: 3, after: p1.next! });
      expect([...p1.items, ...p2.items].map((d) => d.id)).toEqual([
        'a-2',
        'a.4',
        'a1',
        'a_3',
        'b0',
      ]);
    } finally {
      await store.close();
    }
  });

  it('parses int8 as a number on its own pool only', async () => {
    const store = await freshStore();
    try {
      await store.insertDevices([{ id: 'i1', kind: 'device' }], 1_700_000_000_123);
      expect((await store.getDevice('i1'))?.createdAt).toBe(1_700_000_000_123);
      expect(pg.types.getTypeParser(20, 'text')('12')).toBe('12');
    } finally {
      await store.close();
    }
  });

  it('closes idempotently', async () => {
    const store = await freshStore(false);
    await Promise.all([store.close(), store.close()]);
    await store.close();
  });
});

describe('PostgresRegistryStore when the server goes away', () => {
  const own = useServices();

  it('reports StorageUnavailable while the server is down and recovers after a restart', async () => {
    const server = await own.add(startPostgres());
    const store = new PostgresRegistryStore(await server.createDatabase('reg_outage'));
    try {
      await store.migrate();
      await store.insertDevices([{ id: 'o1', kind: 'device' }], 1);
      await server.kill9();
      // A backend serving a pooled connection can outlive its postmaster for a moment.
      const deadline = Date.now() + 10_000;
      while (
        Date.now() < deadline &&
        (await store.ping().then(
          () => true,
          () => false,
        ))
      ) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await expect(store.ping()).rejects.toBeInstanceOf(StorageUnavailable);
      await expect(store.getDevice('o1')).rejects.toBeInstanceOf(StorageUnavailable);
      await server.restart();
      await expect(store.ping()).resolves.toBeUndefined();
      expect((await store.getDevice('o1'))?.id).toBe('o1');
    } finally {
      await store.close();
    }
  });
});
