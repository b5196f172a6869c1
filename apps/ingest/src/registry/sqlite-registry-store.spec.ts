import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { SqliteDatabase } from '../storage/sqlite-database.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { expectUpgradedOnlineDevice, registryStoreContract } from './registry-store.contract.js';
import { SqliteRegistryStore } from './sqlite-registry-store.js';

// Real SQLite (better-sqlite3) on a temporary file, so WAL and locking are exercised.
const dir = mkdtempSync(join(tmpdir(), 'outpost-registry-'));
let n = 0;

registryStoreContract(
  'SQLite',
  async () => {
    const store = new SqliteRegistryStore(join(dir, `registry-${++n}.db`));
    await store.migrate();
    return store;
  },
  async () => rmSync(dir, { recursive: true, force: true }),
);

describe('SqliteRegistryStore upgrade', () => {
  it('upgrades a registry from before replicas were recorded, keeping its devices', async () => {
    const own = mkdtempSync(join(tmpdir(), 'outpost-registry-upgrade-'));
    const path = join(own, 'registry.db');
    const old = new SqliteDatabase(path);
    old.migrate({
      table: 'schema_migrations',
      migrations: SQLITE_MIGRATIONS.slice(0, 1),
      transactions: 'each',
    });
    old.db
      .prepare(
        `INSERT INTO devices (id, kind, status, online, last_seen, created_at, updated_at)
         VALUES ('u1', 'device', 'active', 1, 5, 1, 1)`,
      )
      .run();
    old.close();

    const store = new SqliteRegistryStore(path);
    try {
      await store.migrate();
      await expectUpgradedOnlineDevice(store);
    } finally {
      await store.close();
      rmSync(own, { recursive: true, force: true });
    }
  });
});
