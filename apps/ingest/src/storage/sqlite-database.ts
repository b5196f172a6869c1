import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { SchemaMigration } from './schema-migration.js';

export interface SqliteDatabaseOptions {
  /** Mode of the directories made for the file; the process umask decides without it. */
  dirMode?: number;
}

/** A statement prepared on first use and reused after. */
export type PrepareStatement = <P extends unknown[] = unknown[], R = unknown>(
  sql: string,
) => Database.Statement<P, R>;

/**
 * One SQLite file in WAL mode, for a store that writes per change (a device, a transition,
 * a delivery), not per reading: full durability is affordable.
 */
export class SqliteDatabase {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(path: string, options: SqliteDatabaseOptions = {}) {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), {
        recursive: true,
        ...(options.dirMode === undefined ? {} : { mode: options.dirMode }),
      });
    }
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    // better-sqlite3 builds with foreign keys on; stated so no build or driver change drops them.
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
  }

  readonly prepare: PrepareStatement = <P extends unknown[] = unknown[], R = unknown>(
    sql: string,
  ) => {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement as unknown as Database.Statement<P, R>;
  };

  /**
   * Applies the migrations not yet recorded in `table`. `transactions: 'one'` applies them
   * all or none; `'each'` commits every migration on its own, so those before a failing one
   * stay applied.
   */
  migrate(options: {
    table: string;
    migrations: readonly SchemaMigration[];
    transactions: 'one' | 'each';
  }): void {
    const { table, migrations } = options;
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS ${table} (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
    );
    const pending = () => {
      const applied = new Set(
        this.prepare<[], { version: number }>(`SELECT version FROM ${table}`)
          .all()
          .map((r) => r.version),
      );
      return migrations.filter((m) => !applied.has(m.version));
    };
    const apply = (m: SchemaMigration) => {
      this.db.exec(m.sql);
      this.prepare(`INSERT INTO ${table} (version, applied_at) VALUES (?, ?)`).run(
        m.version,
        Date.now(),
      );
    };
    if (options.transactions === 'one') {
      this.db
        .transaction(() => {
          for (const m of pending()) apply(m);
        })
        .immediate();
    } else {
      for (const m of pending()) this.db.transaction(() => apply(m)).immediate();
    }
  }

  ping(): void {
    this.prepare('SELECT 1').get();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
