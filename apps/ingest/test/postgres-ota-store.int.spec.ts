import { type PostgresHandle, startPostgres } from '@outpost/test-kit/postgres';
import { useServices } from '@outpost/test-kit/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { StorageUnavailable } from '../src/errors.js';
import { otaStoreContract } from '../src/ota/ota-store.contract.js';
import { PostgresOtaStore } from '../src/ota/postgres-ota-store.js';
import { PostgresRegistryStore } from '../src/registry/postgres-registry-store.js';

// Real: a PostgreSQL server (test-kit), the pg driver, several pools on one database as
// several replicas would have. Mocked: nothing.
const services = useServices();
let postgres: PostgresHandle;
let n = 0;

beforeAll(async () => {
  postgres = await services.add(startPostgres());
});

otaStoreContract('PostgreSQL', async () => {
  const url = await postgres.createDatabase(`ota_${++n}`);
  const store = new PostgresOtaStore(url);
  await store.migrate();
  return {
    store,
    twin: async () => {
      const twin = new PostgresOtaStore(url);
      await twin.migrate();
      return twin;
    },
  };
});

describe('PostgresOtaStore', () => {
  it('shares a database with the registry and migrates once when replicas start together', async () => {
    const name = `ota_${++n}`;
    const url = await postgres.createDatabase(name);
    const registry = new PostgresRegistryStore(url);
    const replicas = Array.from({ length: 4 }, () => new PostgresOtaStore(url));
    try {
      await Promise.all([registry.migrate(), ...replicas.map((r) => r.migrate())]);
      expect((await postgres.sql('SELECT version FROM ota_schema_migrations', name)).trim()).toBe(
        '1',
      );
      expect(await replicas[0]!.listReleaseKeys()).toEqual([]);
    } finally {
      await Promise.all([registry.close(), ...replicas.map((r) => r.close())]);
    }
  });
});

describe('PostgresOtaStore when the server goes away', () => {
  const own = useServices();

  it('reports StorageUnavailable while down and recovers after a restart', async () => {
    const server = await own.add(startPostgres());
    const store = new PostgresOtaStore(await server.createDatabase('ota_outage'));
    try {
      await store.migrate();
      await server.kill9();
      await expect(store.ping()).rejects.toBeInstanceOf(StorageUnavailable);
      await expect(store.listReleaseKeys()).rejects.toBeInstanceOf(StorageUnavailable);
      await server.restart();
      await expect(store.ping()).resolves.toBeUndefined();
      expect(await store.listReleaseKeys()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
