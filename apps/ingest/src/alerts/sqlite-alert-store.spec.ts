import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alertStoreContract } from './alert-store.contract.js';
import { SqliteAlertStore } from './sqlite-alert-store.js';

// Real SQLite (better-sqlite3) on temporary files, so WAL, locking and a second connection
// to the same file are exercised.
const dir = mkdtempSync(join(tmpdir(), 'outpost-alerts-'));
let n = 0;

alertStoreContract(
  'SQLite',
  async () => {
    const path = join(dir, `alerts-${++n}.db`);
    const store = new SqliteAlertStore(path);
    await store.migrate();
    return {
      store,
      twin: async () => {
        const twin = new SqliteAlertStore(path);
        await twin.migrate();
        return twin;
      },
    };
  },
  async () => rmSync(dir, { recursive: true, force: true }),
);
