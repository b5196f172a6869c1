import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Downsampler, MergedBatch } from './downsample.js';
import { makeRoom, type RoomStore } from './make-room.js';
import {
  type AppendOutcome,
  type BatchRef,
  batchBytes,
  COUNTER_NAMES,
  type NewBatch,
  type Outbox,
  type OutboxBatch,
  type OutboxCounters,
  type OutboxLimits,
  type OutboxStats,
  type QuarantinedBatch,
  type QuarantinePart,
  type SplitParts,
  zeroCounters,
} from './outbox.js';

export interface SqliteOutboxOptions extends OutboxLimits {
  /** The database file, e.g. `<dataDir>/outbox.db`. */
  path: string;
  /** Needed by `downsample-oldest`; without it that policy drops the oldest instead. */
  downsampler?: Downsampler;
  /**
   * `full` (default) fsyncs every append, so a batch survives a power cut once appended;
   * `normal` survives a crash of the agent but may lose the last appends on power loss.
   * Takes and acks never wait for an fsync: losing one to a power cut only means a batch
   * is sent again (a duplicate the ingest recognises), and the next append's fsync makes
   * them durable anyway (SQLite WAL).
   */
  synchronous?: 'full' | 'normal';
  /** Bound of the quarantine; the oldest quarantined batches are forgotten beyond it. */
  quarantineMaxBytes?: number;
  /** Open an existing outbox without writing to it (`outpost-agent outbox`). */
  readonly?: boolean;
}

export const DEFAULT_QUARANTINE_MAX_BYTES = 64 * 1024 * 1024;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY,
  boot TEXT NOT NULL,
  seq_from INTEGER NOT NULL,
  seq_to INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  records INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  level INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  pack TEXT NOT NULL,
  weights TEXT
);
CREATE INDEX IF NOT EXISTS batches_ref ON batches (boot, seq_from);
CREATE INDEX IF NOT EXISTS batches_created ON batches (created_ms);
CREATE INDEX IF NOT EXISTS batches_unsent ON batches (level, id) WHERE attempts = 0;
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY,
  boot TEXT NOT NULL,
  seq_from INTEGER NOT NULL,
  seq_to INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  quarantined_ms INTEGER NOT NULL,
  records INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT,
  pack TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
`;

interface BatchRow {
  id: number;
  boot: string;
  seq_from: number;
  seq_to: number;
  created_ms: number;
  records: number;
  bytes: number;
  level: number;
  attempts: number;
  pack: string;
  weights: string | null;
}

interface QuarantineRow {
  id: number;
  boot: string;
  seq_from: number;
  seq_to: number;
  created_ms: number;
  quarantined_ms: number;
  records: number;
  bytes: number;
  reason: string;
  detail: string | null;
  pack: string;
}

function toBatch(row: BatchRow): OutboxBatch {
  const batch: OutboxBatch = {
    id: row.id,
    boot: row.boot,
    seq: [row.seq_from, row.seq_to],
    createdMs: row.created_ms,
    records: row.records,
    bytes: row.bytes,
    level: row.level,
    attempts: row.attempts,
    pack: row.pack,
    ...(row.weights === null ? {} : { weights: JSON.parse(row.weights) as number[] }),
  };
  return batch;
}

/**
 * The outbox in SQLite (WAL). Every append, ack, drop, merge, quarantine, split and withhold
 * is one transaction, so a `kill -9` or power cut leaves either the state before or after it.
 * Totals are kept in memory and recomputed from the tables at open.
 */
export class SqliteOutbox implements Outbox {
  readonly #db: Database.Database;
  readonly #downsampler: Downsampler | undefined;
  readonly #quarantineMaxBytes: number;
  readonly #readonly: boolean;
  readonly #fullSync: boolean;
  #limits: OutboxLimits;
  #pending = 0;
  #records = 0;
  #bytes = 0;
  #quarantined = 0;
  #quarantinedRecords = 0;
  #quarantinedBytes = 0;
  readonly #counters: OutboxCounters;
  readonly #stmt: ReturnType<typeof prepare>;
  readonly #writes: ReturnType<typeof writeStatements> | undefined;
  readonly #room: RoomStore;

  constructor(options: SqliteOutboxOptions) {
    this.#limits = { maxBytes: options.maxBytes, whenFull: options.whenFull };
    this.#downsampler = options.downsampler;
    this.#quarantineMaxBytes = options.quarantineMaxBytes ?? DEFAULT_QUARANTINE_MAX_BYTES;
    this.#readonly = options.readonly === true;
    this.#fullSync = options.synchronous !== 'normal';
    if (!this.#readonly) mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path, {
      readonly: this.#readonly,
      fileMustExist: this.#readonly,
    });
    if (!this.#readonly) {
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      this.#db.exec(SCHEMA);
    }
    this.#db.pragma('busy_timeout = 5000');
    this.#stmt = prepare(this.#db);
    // A read-only connection cannot prepare writes.
    this.#writes = this.#readonly ? undefined : writeStatements(this.#db);
    this.#counters = zeroCounters();
    for (const row of this.#stmt.counters.all()) {
      if ((COUNTER_NAMES as readonly string[]).includes(row.name)) {
        this.#counters[row.name as keyof OutboxCounters] = row.value;
      }
    }
    this.#reloadTotals();
    this.#room = this.#roomStore();
  }

  append(batch: NewBatch): AppendOutcome {
    this.#writable();
    const bytes = batchBytes(batch);
    return this.#tx(() => {
      const room = makeRoom(
        this.#room,
        bytes,
        this.#limits.maxBytes,
        this.#limits.whenFull,
        this.#downsampler,
      );
      this.#count('droppedRecords', room.droppedRecords);
      this.#count('downsampledRecords', room.downsampledRecords);
      this.#count('aggregateRecords', room.aggregateRecords);
      if (!room.ok) {
        this.#count('rejectedRecords', batch.records);
        return {
          stored: false,
          reason: bytes > this.#limits.maxBytes ? 'too_large' : 'full',
        } as const;
      }
      const id = this.#insert(batch, bytes);
      this.#count('appendedRecords', batch.records);
      return {
        stored: true,
        id,
        dropped: room.droppedRecords,
        downsampled: room.downsampledRecords,
      } as const;
    });
  }

  take(limit: number, exclude: ReadonlySet<number> = new Set()): OutboxBatch[] {
    this.#writable();
    if (limit <= 0) return [];
    // Ids first (the primary key alone), then only the rows handed out: the batches in
    // flight are the oldest, and their packs need not be read again.
    const ids = this.#stmt.headIds
      .all(limit + exclude.size)
      .map((r) => r.id)
      .filter((id) => !exclude.has(id))
      .slice(0, limit);
    if (ids.length === 0) return [];
    const rows = ids.map((id) => this.#stmt.byId.get(id)!);
    this.#relaxedTx(() => {
      for (const row of rows) this.#w.attempted.run(row.id);
    });
    return rows.map(toBatch);
  }

  ack(ids: readonly number[]): void {
    this.#writable();
    if (ids.length === 0) return;
    this.#relaxedTx(() => {
      for (const id of ids) {
        const row = this.#w.deleteBatch.get(id);
        if (row === undefined) continue;
        this.#pending--;
        this.#records -= row.records;
        this.#bytes -= row.bytes;
        this.#count('ackedRecords', row.records);
      }
    });
  }

  quarantine(
    ref: BatchRef,
    reason: string,
    detail: string | undefined,
    nowMs: number,
    known?: OutboxBatch,
  ): boolean {
    this.#writable();
    return this.#tx(() => {
      const row = this.#stmt.byRef.get(ref.boot, ref.seq[0], ref.seq[1]);
      const batch = row === undefined ? known : toBatch(row);
      if (batch === undefined) return false;
      if (row !== undefined) this.#deleteRow(row);
      this.#enterQuarantine(batch, { ...batch, reason, detail }, nowMs);
      return true;
    });
  }

  withhold(batch: NewBatch, reason: string, detail: string | undefined, nowMs: number): void {
    this.#writable();
    this.#tx(() => this.#enterQuarantine(batch, { ...batch, reason, detail }, nowMs));
  }

  find(ref: BatchRef): OutboxBatch | undefined {
    const row = this.#stmt.byRef.get(ref.boot, ref.seq[0], ref.seq[1]);
    return row === undefined ? undefined : toBatch(row);
  }

  split(ref: BatchRef, parts: SplitParts, nowMs: number): void {
    this.#writable();
    // Fsynced like an append: the re-queued readings exist nowhere else once it commits.
    this.#tx(() => {
      const row = this.#stmt.byRef.get(ref.boot, ref.seq[0], ref.seq[1]);
      // Inserted while the refused row still exists, so their ids come after its id and
      // never reuse it (an acknowledgement of the refused batch may still be on its way).
      for (const batch of parts.requeue) {
        this.#insert(batch, batchBytes(batch));
        this.#count('requeuedRecords', batch.records);
      }
      if (row !== undefined) this.#deleteRow(row);
      this.#enterQuarantine(ref, parts.quarantine, nowMs);
    });
  }

  listQuarantine(limit: number): QuarantinedBatch[] {
    return this.#stmt.listQuarantine.all(limit).map((row) => ({
      id: row.id,
      boot: row.boot,
      seq: [row.seq_from, row.seq_to] as const,
      createdMs: row.created_ms,
      quarantinedMs: row.quarantined_ms,
      records: row.records,
      bytes: row.bytes,
      reason: row.reason,
      detail: row.detail ?? undefined,
      pack: row.pack,
    }));
  }

  stats(): OutboxStats {
    if (this.#readonly) this.#reloadTotals();
    const oldest = this.#stmt.oldest.get();
    return {
      pending: this.#pending,
      records: this.#records,
      bytes: this.#bytes,
      oldestMs: oldest?.created_ms ?? undefined,
      quarantined: this.#quarantined,
      quarantinedRecords: this.#quarantinedRecords,
      maxBytes: this.#limits.maxBytes,
      whenFull: this.#limits.whenFull,
      counters: { ...this.#counters },
    };
  }

  setLimits(limits: OutboxLimits): void {
    this.#limits = { ...limits };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  #writable(): void {
    if (this.#writes === undefined) throw new Error('the outbox was opened read-only');
  }

  get #w(): ReturnType<typeof writeStatements> {
    if (this.#writes === undefined) throw new Error('the outbox was opened read-only');
    return this.#writes;
  }

  #tx<T>(fn: () => T): T {
    try {
      return this.#db.transaction(fn)();
    } catch (err) {
      // Rolled back: the totals kept in memory are read again from what is on disk.
      try {
        this.#reloadTotals(true);
      } catch {
        // The disk is failing: the first error says more.
      }
      throw err;
    }
  }

  /** A transaction that does not wait for an fsync (see `synchronous`). */
  #relaxedTx(fn: () => void): void {
    if (!this.#fullSync) {
      this.#tx(fn);
      return;
    }
    this.#db.pragma('synchronous = NORMAL');
    try {
      this.#tx(fn);
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
  }

  #count(name: keyof OutboxCounters, n: number): void {
    if (n === 0) return;
    this.#counters[name] += n;
    this.#w.bumpCounter.run(name, n);
  }

  #reloadTotals(counters = this.#readonly): void {
    const pending = this.#stmt.pendingTotals.get()!;
    this.#pending = pending.n;
    this.#records = pending.records ?? 0;
    this.#bytes = pending.bytes ?? 0;
    const quarantined = this.#stmt.quarantineTotals.get()!;
    this.#quarantined = quarantined.n;
    this.#quarantinedRecords = quarantined.records ?? 0;
    this.#quarantinedBytes = quarantined.bytes ?? 0;
    if (counters) {
      Object.assign(this.#counters, zeroCounters());
      for (const row of this.#stmt.counters.all()) {
        if ((COUNTER_NAMES as readonly string[]).includes(row.name)) {
          this.#counters[row.name as keyof OutboxCounters] = row.value;
        }
      }
    }
  }

  /**
   * Inserts a pending batch (inside a transaction) under `id`, or a new id when null;
   * returns the id.
   */
  #insert(batch: NewBatch, bytes: number, id: number | null = null): number {
    const rowId = Number(
      this.#w.insert.run(
        id,
        batch.boot,
        batch.seq[0],
        batch.seq[1],
        batch.createdMs,
        batch.records,
        bytes,
        batch.level ?? 0,
        0,
        batch.pack,
        batch.weights === undefined ? null : JSON.stringify(batch.weights),
      ).lastInsertRowid,
    );
    this.#pending++;
    this.#records += batch.records;
    this.#bytes += bytes;
    return rowId;
  }

  #deleteRow(row: BatchRow): void {
    if (this.#w.deleteBatch.get(row.id) === undefined) return;
    this.#pending--;
    this.#records -= row.records;
    this.#bytes -= row.bytes;
  }

  /** Adds to the quarantine under `ref`, then forgets the oldest beyond its bound. */
  #enterQuarantine(ref: BatchRef, part: QuarantinePart, nowMs: number): void {
    const bytes = batchBytes(part);
    this.#w.insertQuarantine.run(
      ref.boot,
      ref.seq[0],
      ref.seq[1],
      part.createdMs,
      nowMs,
      part.records,
      bytes,
      part.reason,
      part.detail ?? null,
      part.pack,
    );
    this.#quarantined++;
    this.#quarantinedRecords += part.records;
    this.#quarantinedBytes += bytes;
    this.#count('quarantinedRecords', part.records);
    while (this.#quarantinedBytes > this.#quarantineMaxBytes && this.#quarantined > 1) {
      const oldest = this.#w.deleteOldestQuarantine.get();
      if (oldest === undefined) break;
      this.#quarantined--;
      this.#quarantinedRecords -= oldest.records;
      this.#quarantinedBytes -= oldest.bytes;
      this.#count('quarantineDroppedRecords', oldest.records);
    }
  }

  #roomStore(): RoomStore {
    return {
      pendingBytes: () => this.#bytes,
      scan: (afterId, limit, level) =>
        (level === undefined
          ? this.#stmt.scan.all(afterId, limit)
          : this.#stmt.scanUnsent.all(level, afterId, limit)
        ).map(toBatch),
      unsentLevels: () => this.#stmt.unsentLevels.all().map((r) => r.level),
      remove: (batch) => {
        if (this.#w.deleteBatch.get(batch.id) === undefined) return;
        this.#pending--;
        this.#records -= batch.records;
        this.#bytes -= batch.bytes;
      },
      replace: (inputs, merged) => {
        for (const input of inputs) this.#room.remove(input);
        for (const batch of merged) this.#insertMerged(batch);
      },
    };
  }

  #insertMerged(batch: MergedBatch): void {
    this.#insert(batch, batchBytes(batch), batch.id);
  }
}

function prepare(db: Database.Database) {
  return {
    counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters'),
    pendingTotals: db.prepare<[], { n: number; records: number | null; bytes: number | null }>(
      'SELECT COUNT(*) AS n, SUM(records) AS records, SUM(bytes) AS bytes FROM batches',
    ),
    quarantineTotals: db.prepare<[], { n: number; records: number | null; bytes: number | null }>(
      'SELECT COUNT(*) AS n, SUM(records) AS records, SUM(bytes) AS bytes FROM quarantine',
    ),
    oldest: db.prepare<[], { created_ms: number | null }>(
      'SELECT MIN(created_ms) AS created_ms FROM batches',
    ),
    headIds: db.prepare<[number], { id: number }>('SELECT id FROM batches ORDER BY id LIMIT ?'),
    byId: db.prepare<[number], BatchRow>('SELECT * FROM batches WHERE id = ?'),
    scan: db.prepare<[number, number], BatchRow>(
      'SELECT * FROM batches WHERE id > ? ORDER BY id LIMIT ?',
    ),
    scanUnsent: db.prepare<[number, number, number], BatchRow>(
      'SELECT * FROM batches WHERE attempts = 0 AND level = ? AND id > ? ORDER BY id LIMIT ?',
    ),
    unsentLevels: db.prepare<[], { level: number }>(
      'SELECT DISTINCT level FROM batches WHERE attempts = 0 ORDER BY level',
    ),
    byRef: db.prepare<[string, number, number], BatchRow>(
      'SELECT * FROM batches WHERE boot = ? AND seq_from = ? AND seq_to = ?',
    ),
    listQuarantine: db.prepare<[number], QuarantineRow>(
      'SELECT * FROM quarantine ORDER BY id DESC LIMIT ?',
    ),
  };
}

function writeStatements(db: Database.Database) {
  return {
    insert: db.prepare<
      [
        number | null,
        string,
        number,
        number,
        number,
        number,
        number,
        number,
        number,
        string,
        string | null,
      ]
    >(
      `INSERT INTO batches (id, boot, seq_from, seq_to, created_ms, records, bytes, level, attempts, pack, weights)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    attempted: db.prepare<[number]>('UPDATE batches SET attempts = attempts + 1 WHERE id = ?'),
    deleteBatch: db.prepare<[number], { records: number; bytes: number }>(
      'DELETE FROM batches WHERE id = ? RETURNING records, bytes',
    ),
    insertQuarantine: db.prepare<
      [string, number, number, number, number, number, number, string, string | null, string]
    >(
      `INSERT INTO quarantine (boot, seq_from, seq_to, created_ms, quarantined_ms, records, bytes, reason, detail, pack)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteOldestQuarantine: db.prepare<[], { records: number; bytes: number }>(
      'DELETE FROM quarantine WHERE id = (SELECT MIN(id) FROM quarantine) RETURNING records, bytes',
    ),
    bumpCounter: db.prepare<[string, number]>(
      `INSERT INTO counters (name, value) VALUES (?, ?)
       ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`,
    ),
  };
}
