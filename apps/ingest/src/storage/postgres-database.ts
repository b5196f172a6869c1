import pg from 'pg';
import { StorageUnavailable } from '../errors.js';
import type { SchemaMigration } from './schema-migration.js';

export interface PostgresDatabaseOptions {
  poolSize: number;
  /** How long to wait for a connection; 10 s by default. */
  connectTimeoutMs?: number;
  /** A query still running after this long fails; no limit by default. */
  queryTimeoutMs?: number;
  applicationName?: string;
  /**
   * The store's name in `StorageUnavailable` messages ("PostgreSQL <name> unavailable: …").
   * Without it every error reaches the caller as pg raised it.
   */
  storeName?: string;
}

/**
 * int8 (count(*), the epoch-millisecond columns) as a JS number, for these pools only.
 * Epoch milliseconds and counts stay far below 2^53.
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: (oid, format) =>
    oid === pg.types.builtins.INT8 && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format),
};

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** The server is unreachable, shutting down, or refusing connections: retry later. */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_ERRORS.has(code)) return true;
    // SQLSTATE class 08 connection exception; 53300 too_many_connections;
    // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
    if (code.startsWith('08') || code === '53300' || /^57P0[123]$/.test(code)) return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect/i.test(err.message);
}

/** SQLSTATE 23505 unique_violation, of `constraint` when one is named. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null | undefined;
  return e?.code === '23505' && (constraint === undefined || e.constraint === constraint);
}

/**
 * Takes an advisory lock (per database) until the transaction commits or rolls back:
 * replicas doing the same thing at once queue on it.
 */
export async function advisoryTransactionLock(tx: pg.PoolClient, key: number): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [key]);
}

/** A connection pool to one PostgreSQL database, shared by one store's statements. */
export class PostgresDatabase {
  /** For statements that run either on the pool or on a transaction's client. */
  readonly pool: pg.Pool;
  private readonly storeName: string | undefined;
  private ended: Promise<void> | undefined;

  constructor(url: string, options: PostgresDatabaseOptions) {
    this.storeName = options.storeName;
    this.pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      types,
      ...(options.queryTimeoutMs === undefined ? {} : { query_timeout: options.queryTimeoutMs }),
      ...(options.applicationName === undefined
        ? {}
        : { application_name: options.applicationName }),
    });
    // An idle client whose connection drops emits here; without a listener the process
    // would crash. The pool discards that client and the next query reports the failure.
    this.pool.on('error', () => {});
  }

  /** Connection failures become StorageUnavailable (when the store is named); others pass. */
  mapError(err: unknown): unknown {
    if (err instanceof StorageUnavailable || !isUnavailable(err)) return err;
    return this.unavailable(err);
  }

  async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw this.mapError(err);
    }
  }

  /**
   * Runs `work` in a transaction on one pooled connection. Commits unless `work` throws or
   * `commitIf` rejects its result, in which case it rolls back and still returns the result.
   */
  async transaction<T>(
    work: (tx: pg.PoolClient) => Promise<T>,
    commitIf: (result: T) => boolean = () => true,
  ): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.mapError(err);
    }
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query(commitIf(result) ? 'COMMIT' : 'ROLLBACK');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        // The connection is unusable: destroy it rather than return it to the pool.
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw this.mapError(err);
    } finally {
      client.release(broken);
    }
  }

  /**
   * Applies the migrations not yet recorded in `table`, all in one transaction under the
   * advisory lock `lockId`, so replicas that start at once apply each exactly once.
   */
  async migrate(options: {
    table: string;
    lockId: number;
    migrations: readonly SchemaMigration[];
  }): Promise<void> {
    const { table, lockId, migrations } = options;
    await this.transaction(async (tx) => {
      await advisoryTransactionLock(tx, lockId);
      await tx.query(
        `CREATE TABLE IF NOT EXISTS ${table} (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`,
      );
      const { rows } = await tx.query<{ version: number }>(`SELECT version FROM ${table}`);
      const applied = new Set(rows.map((r) => r.version));
      for (const m of migrations) {
        if (applied.has(m.version)) continue;
        await tx.query(m.sql);
        await tx.query(`INSERT INTO ${table} (version, applied_at) VALUES ($1, $2)`, [
          m.version,
          Date.now(),
        ]);
      }
    });
  }

  /** Readiness: any failure to answer means not ready, so every error is unavailability. */
  async ping(): Promise<void> {
    try {
      await this.pool.query('SELECT 1');
    } catch (err) {
      throw err instanceof StorageUnavailable ? err : this.unavailable(err);
    }
  }

  /** Idempotent: later and concurrent calls wait for the same end. */
  async close(): Promise<void> {
    this.ended ??= this.pool.end();
    await this.ended;
  }

  private unavailable(err: unknown): unknown {
    if (this.storeName === undefined) return err;
    return new StorageUnavailable(
      `PostgreSQL ${this.storeName} unavailable: ${err instanceof Error ? err.message : String(err)}`,
      err,
    );
  }
}
