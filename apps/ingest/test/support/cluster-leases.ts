import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PostgresHandle } from '@outpost/test-kit/postgres';
import { LEASES } from '../../src/cluster/lease.js';
import { type PostgresLeases, PostgresLeaseTable } from '../../src/cluster/postgres-lease.js';
import { type InProcessIngest, startInProcess, TestClock } from './ingest-app.js';

/** Short leases so takeovers happen within a test; generous for a loaded 2-core machine. */
export const LEASE_TTL_MS = 2_000;

export interface Replica extends InProcessIngest {
  id: string;
}

/**
 * Replicas of the ingest app in this process on one PostgreSQL database, sharing a clock
 * (so soak times and silences move for all at once), a data dir (firmware artifacts) and
 * the outbox directory. Each has its own broker, HTTP port, stores and leases.
 */
export class TestCluster {
  readonly clock = new TestClock();
  readonly dataDir = mkdtempSync(join(tmpdir(), 'outpost-cluster-'));
  readonly outboxDir = join(this.dataDir, 'outbox');
  readonly replicas: Replica[] = [];
  readonly leases: PostgresLeaseTable;

  private constructor(
    readonly databaseUrl: string,
    private readonly env: Record<string, string>,
  ) {
    this.leases = new PostgresLeaseTable(databaseUrl);
  }

  static async create(
    postgres: PostgresHandle,
    name: string,
    env: Record<string, string> = {},
  ): Promise<TestCluster> {
    const url = await postgres.createDatabase(name);
    return new TestCluster(url, env);
  }

  async start(id: string, env: Record<string, string> = {}): Promise<Replica> {
    const ingest = await startInProcess(
      {
        INGEST_DATABASE_URL: this.databaseUrl,
        INGEST_REPLICA_ID: id,
        INGEST_LEASE_TTL_MS: String(LEASE_TTL_MS),
        INGEST_OUTBOX_DIR: this.outboxDir,
        INGEST_OTA_TICK_MS: '50',
        INGEST_ALERT_TICK_MS: '50',
        INGEST_ALERT_RULES_REFRESH_MS: '200',
        ...this.env,
        ...env,
      },
      { dataDir: this.dataDir, clock: this.clock },
    );
    const replica = Object.assign(ingest, { id });
    this.replicas.push(replica);
    return replica;
  }

  /** The replica id holding lease `name` now, if any. */
  async holder(name: string): Promise<string | undefined> {
    const row = await this.leases.holderOf(name);
    if (!row || row.expiresInMs <= 0) return undefined;
    return row.holder.slice(0, row.holder.lastIndexOf('/'));
  }

  replica(id: string): Replica {
    const found = this.replicas.find((r) => r.id === id);
    if (!found) throw new Error(`no replica ${id}`);
    return found;
  }

  /**
   * A replica dying for good: its leases stop being renewed and are not released (they
   * lapse after the TTL, as after a crash), then the app stops.
   */
  async kill(id: string): Promise<void> {
    const replica = this.replica(id);
    this.replicas.splice(this.replicas.indexOf(replica), 1);
    await (replica.app.get(LEASES) as PostgresLeases).abandon();
    await replica.app.close();
  }

  async close(): Promise<void> {
    for (const r of this.replicas.splice(0)) await r.app.close();
    await this.leases.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
