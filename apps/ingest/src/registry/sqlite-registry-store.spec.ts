import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryStoreContract } from './registry-store.contract.js';
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
