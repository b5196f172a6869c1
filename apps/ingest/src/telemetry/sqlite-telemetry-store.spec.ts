import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteTelemetryStore } from './sqlite-telemetry-store.js';
import { telemetryStoreContract } from './telemetry-store.contract.js';

// Real SQLite (better-sqlite3) on a temporary file, so WAL and locking are exercised.
const dir = mkdtempSync(join(tmpdir(), 'outpost-telemetry-'));
let n = 0;

telemetryStoreContract('SQLite', async () => new SqliteTelemetryStore(join(dir, `t-${++n}.db`)), {
  teardown: async () => rmSync(dir, { recursive: true, force: true }),
});

describe('SqliteTelemetryStore', () => {
  it('keeps points across close and reopen', async () => {
    const path = join(dir, 'reopen.db');
    const first = new SqliteTelemetryStore(path);
    await first.write([
      { device: 'd', metric: 'm', timeMs: 1_000, value: 1, unit: 'V', tags: { site: 'a' } },
    ]);
    await first.close();
    await first.close();
    const second = new SqliteTelemetryStore(path);
    try {
      expect(await second.latest('d')).toEqual([
        { metric: 'm', timeMs: 1_000, value: 1, unit: 'V' },
      ]);
    } finally {
      await second.close();
    }
  });
});
