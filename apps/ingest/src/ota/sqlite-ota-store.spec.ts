import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { otaStoreContract } from './ota-store.contract.js';
import { SqliteOtaStore } from './sqlite-ota-store.js';

// Real SQLite (better-sqlite3) on temporary files, so WAL, locking and a second connection
// to the same file are exercised.
const dir = mkdtempSync(join(tmpdir(), 'outpost-ota-'));
let n = 0;

otaStoreContract(
  'SQLite',
  async () => {
    const path = join(dir, `ota-${++n}.db`);
    const store = new SqliteOtaStore(path);
    await store.migrate();
    return {
      store,
      twin: async () => {
        const twin = new SqliteOtaStore(path);
        await twin.migrate();
        return twin;
      },
    };
  },
  async () => rmSync(dir, { recursive: true, force: true }),
);
