import { type PostgresHandle, startPostgres } from '@outpost/test-kit/postgres';
import { useServices } from '@outpost/test-kit/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { alertStoreContract } from '../src/alerts/alert-store.contract.js';
import { PostgresAlertStore } from '../src/alerts/postgres-alert-store.js';
import { StorageUnavailable } from '../src/errors.js';
import { POSTGRES_MIGRATIONS } from '../src/registry/migrations.js';
import { PostgresRegistryStore } from '../src/registry/postgres-registry-store.js';

// Real: a PostgreSQL server (test-kit), the pg driver, several pools on one database as
// several replicas would have. Mocked: nothing.
const services = useServices();
let postgres: PostgresHandle;
let n = 0;

beforeAll(async () => {
  postgres = await services.add(startPostgres());
});

alertStoreContract('PostgreSQL', async () => {
  const url = await postgres.createDatabase(`alerts_${++n}`);
  const store = new PostgresAlertStore(url);
  await store.migrate();
  return {
    store,
    twin: async () => {
      const twin = new PostgresAlertStore(url);
      await twin.migrate();
      return twin;
    },
  };
});

describe('PostgresAlertStore', () => {
  it('shares a database with the registry and migrates once when replicas start together', async () => {
    const name = `alerts_${++n}`;
    const url = await postgres.createDatabase(name);
    const registry = new PostgresRegistryStore(url);
    const replicas = Array.from({ length: 4 }, () => new PostgresAlertStore(url));
    try {
      await Promise.all([registry.migrate(), ...replicas.map((r) => r.migrate())]);
      expect((await postgres.sql('SELECT version FROM alert_schema_migrations', name)).trim()).toBe(
        '1',
      );
      expect(
        (await postgres.sql('SELECT version FROM schema_migrations ORDER BY version', name)).trim(),
      ).toBe(POSTGRES_MIGRATIONS.map((m) => m.version).join('\n'));
      expect(await replicas[0]!.listRules()).toEqual([]);
    } finally {
      await Promise.all([registry.close(), ...replicas.map((r) => r.close())]);
    }
  });

  it('closes idempotently', async () => {
    const store = new PostgresAlertStore(await postgres.createDatabase(`alerts_${++n}`));
    await Promise.all([store.close(), store.close()]);
  });
});

describe('PostgresAlertStore when the server goes away', () => {
  const own = useServices();

  it('reports StorageUnavailable while down and recovers after a restart', async () => {
    const server = await own.add(startPostgres());
    const store = new PostgresAlertStore(await server.createDatabase('alerts_outage'));
    try {
      await store.migrate();
      await server.kill9();
      await expect(store.ping()).rejects.toBeInstanceOf(StorageUnavailable);
      await expect(store.listRules()).rejects.toBeInstanceOf(StorageUnavailable);
      await server.restart();
      await expect(store.ping()).resolves.toBeUndefined();
      expect(await store.listRules()).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
