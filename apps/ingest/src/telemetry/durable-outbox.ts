import { closeSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { AppError } from '@outpost/protocol/errors';
import Database from 'better-sqlite3';
import type { Clock } from '../injection.js';
import type { TelemetryPoint } from './telemetry-store.js';

/**
 * The ingest service's durable outbox (PROTOCOL.md §9): a batch is "accepted" only once it
 * is committed to this SQLite file and the commit is on disk, so the broker may send the
 * QoS 1 PUBACK and neither a `kill -9` nor a power cut right after loses anything. A writer
 * (outbox-writer.ts) drains it to the TelemetryStore and deletes a batch only after the store
 * took it.
 *
 * Group commit: concurrent `accept` calls wait up to `groupCommitMs` (or until
 * `groupCommitMaxPoints` are queued) and share one transaction, so one fsync covers many
 * batches. The fsync is not SQLite's: the file is in WAL mode with synchronous=NORMAL, so a
 * commit only writes its frames to the WAL, and the outbox then fdatasyncs the WAL on the
 * threadpool (`WalSync`), resolving the group once that is done. The event loop goes on
 * decoding the next batches while the disk flushes: with synchronous=FULL the commit blocked
 * it for the whole fsync. What is on disk is the same either way: every acknowledged commit's
 * frames, and SQLite still syncs the WAL before each checkpoint. Dedup (PROTOCOL.md §5): the `(boot, seq)` ranges of each publisher are kept as
 * merged intervals in `seen`, for `dedupRetentionMs` after their last batch, so a replay is
 * a duplicate even after its batch was drained; a contiguous stream costs one row per boot.
 * One process owns the file: counters are kept in memory.
 *
 * Draining: `remove` forgets a batch at once (no `peek` returns it again) but its DELETE rides
 * on the next group commit instead of paying an fsync of its own. A crash before that commit
 * loses only the delete: after a restart the batch is written to the store once more, which
 * is harmless because the store is idempotent (the same point overwrites itself). Accepted
 * batches are also kept in memory, up to `maxCachedPoints`, so the writer gets their points
 * without decoding the body; the file stays the truth, and after a restart every batch is
 * decoded from it.
 */

export interface OutboxBatchInput {
  publisher: string;
  boot?: string;
  /** Inclusive range of the batch's per-boot record sequence numbers. */
  seq?: readonly [number, number];
  points: readonly TelemetryPoint[];
}

export interface OutboxBatch {
  id: number;
  publisher: string;
  boot?: string;
  seq?: [number, number];
  acceptedMs: number;
  points: TelemetryPoint[];
}

export interface QuarantinedBatch {
  id: number;
  publisher: string;
  boot?: string;
  seq?: [number, number];
  acceptedMs: number;
  quarantinedMs: number;
  /** Number of points. */
  points: number;
  reason: string;
}

export interface OutboxStats {
  pendingBatches: number;
  pendingPoints: number;
  /** Acceptance time of the batch first in line (epoch ms); null when nothing is pending. */
  oldestMs: number | null;
  quarantinedBatches: number;
  quarantinedPoints: number;
}

export interface DurableOutboxOptions {
  /** The SQLite file, e.g. `<data dir>/telemetry-outbox.db`. */
  path: string;
  clock?: Clock;
  /** How long an accept waits for others to share its commit; 2 ms by default. */
  groupCommitMs?: number;
  /** Commit at once when this many points are queued; 10,000 by default. */
  groupCommitMaxPoints?: number;
  /** Accepts fail with `outbox_full` beyond this many pending points; 50 million by default. */
  maxBacklogPoints?: number;
  /** How long a publisher's seq ranges are remembered after their last batch; 7 days. */
  dedupRetentionMs?: number;
  /** Points of accepted batches kept in memory for `peek`; 200,000 by default, 0 for none. */
  maxCachedPoints?: number;
  /** How the WAL is flushed to disk; `fs.fdatasync` (on the threadpool) unless a test holds it. */
  fdatasync?: (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void;
}

/** The backlog is at its bound: the broker does not ack, the device retries later. */
export class OutboxFull extends AppError {
  constructor(pendingPoints: number, maxPoints: number) {
    super(
      'unavailable',
      'outbox_full',
      `telemetry outbox full: ${pendingPoints} points pending (max ${maxPoints})`,
      { details: { pendingPoints, maxPoints } },
    );
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS batches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  publisher TEXT NOT NULL,
  boot TEXT,
  seq_from INTEGER,
  seq_to INTEGER,
  accepted_ms INTEGER NOT NULL,
  points INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
  id INTEGER PRIMARY KEY,
  publisher TEXT NOT NULL,
  boot TEXT,
  seq_from INTEGER,
  seq_to INTEGER,
  accepted_ms INTEGER NOT NULL,
  quarantined_ms INTEGER NOT NULL,
  points INTEGER NOT NULL,
  body TEXT NOT NULL,
  reason TEXT NOT NULL
);
-- Disjoint, non-adjacent intervals of seen sequence numbers per (publisher, boot).
CREATE TABLE IF NOT EXISTS seen (
  publisher TEXT NOT NULL,
  boot TEXT NOT NULL,
  seq_from INTEGER NOT NULL,
  seq_to INTEGER NOT NULL,
  seen_ms INTEGER NOT NULL,
  PRIMARY KEY (publisher, boot, seq_from)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (seen_ms);
PRAGMA user_version = 1;
`;

function prepareStatements(db: Database.Database) {
  return {
    insertBatch: db.prepare<
      [string, string | null, number | null, number | null, number, number, string]
    >(
      `INSERT INTO batches (publisher, boot, seq_from, seq_to, accepted_ms, points, body)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    predecessor: db.prepare<[string, string, number], Interval>(
      `SELECT seq_from, seq_to FROM seen WHERE publisher = ? AND boot = ? AND seq_from < ?
       ORDER BY seq_from DESC LIMIT 1`,
    ),
    within: db.prepare<[string, string, number, number], Interval>(
      `SELECT seq_from, seq_to FROM seen WHERE publisher = ? AND boot = ? AND seq_from BETWEEN ? AND ?`,
    ),
    deleteInterval: db.prepare<[string, string, number]>(
      'DELETE FROM seen WHERE publisher = ? AND boot = ? AND seq_from = ?',
    ),
    insertInterval: db.prepare<[string, string, number, number, number]>(
      'INSERT INTO seen (publisher, boot, seq_from, seq_to, seen_ms) VALUES (?, ?, ?, ?, ?)',
    ),
    pruneSeen: db.prepare<[number]>('DELETE FROM seen WHERE seen_ms < ?'),
    // Without the body: a batch still in memory never reads it.
    peek: db.prepare<[], Omit<BatchRow, 'body'>>(
      'SELECT id, publisher, boot, seq_from, seq_to, accepted_ms, points FROM batches ORDER BY id',
    ),
    body: db.prepare<[number], { body: string }>('SELECT body FROM batches WHERE id = ?'),
    pointsOf: db.prepare<[number], { points: number }>('SELECT points FROM batches WHERE id = ?'),
    oldest: db.prepare<[], { id: number; accepted_ms: number }>(
      'SELECT id, accepted_ms FROM batches ORDER BY id',
    ),
    remove: db.prepare<[number], { points: number }>(
      'DELETE FROM batches WHERE id = ? RETURNING points',
    ),
    deleteBatch: db.prepare<[number]>('DELETE FROM batches WHERE id = ?'),
    toQuarantine: db.prepare<[number, string, number]>(
      `INSERT INTO quarantine (id, publisher, boot, seq_from, seq_to, accepted_ms, quarantined_ms, points, body, reason)
       SELECT id, publisher, boot, seq_from, seq_to, accepted_ms, ?, points, body, ? FROM batches WHERE id = ?`,
    ),
    listQuarantine: db.prepare<
      [number],
      Omit<BatchRow, 'body'> & { quarantined_ms: number; reason: string }
    >(
      `SELECT id, publisher, boot, seq_from, seq_to, accepted_ms, quarantined_ms, points, reason
       FROM quarantine ORDER BY id LIMIT ?`,
    ),
    requeue: db.prepare<[number]>(
      `INSERT INTO batches (publisher, boot, seq_from, seq_to, accepted_ms, points, body)
       SELECT publisher, boot, seq_from, seq_to, accepted_ms, points, body FROM quarantine WHERE id = ?`,
    ),
    unquarantine: db.prepare<[number], { points: number }>(
      'DELETE FROM quarantine WHERE id = ? RETURNING points',
    ),
  };
}

const DAY_MS = 86_400_000;
const PRUNE_EVERY_MS = 60_000;
const MAX_REASON_LENGTH = 1_000;

interface Queued {
  publisher: string;
  boot: string | undefined;
  seq: readonly [number, number] | undefined;
  count: number;
  body: string;
  points: readonly TelemetryPoint[];
  /** The batch's row id, once inserted. */
  id: number;
  resolve(outcome: 'accepted' | 'duplicate'): void;
  reject(err: unknown): void;
}

interface BatchRow {
  id: number;
  publisher: string;
  boot: string | null;
  seq_from: number | null;
  seq_to: number | null;
  accepted_ms: number;
  points: number;
  body: string;
}

interface Interval {
  seq_from: number;
  seq_to: number;
}

export class DurableOutbox {
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly groupCommitMs: number;
  private readonly groupCommitMaxPoints: number;
  private readonly maxBacklogPoints: number;
  private readonly dedupRetentionMs: number;
  private readonly listeners = new Set<() => void>();
  private readonly stmt: ReturnType<typeof prepareStatements>;
  private readonly maxCachedPoints: number;
  private readonly commitGroup: (
    group: readonly Queued[],
    deletes: readonly number[],
    now: number,
  ) => ('accepted' | 'duplicate')[];
  /** Removed batches whose DELETE waits for the next commit; `peek` skips them. */
  private readonly removed = new Set<number>();
  /** Points of the batches `peek` handed out, by id: what `remove` subtracts. */
  private readonly sizes = new Map<number, number>();
  /** Points of recently accepted batches, by id, oldest first: `peek` needs no decoding. */
  private readonly cached = new Map<number, readonly TelemetryPoint[]>();
  private cachedPoints = 0;
  private queue: Queued[] = [];
  private queuedPoints = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private pendingBatches = 0;
  private pendingPoints = 0;
  private quarantinedBatches = 0;
  private quarantinedPoints = 0;
  private lastPruneMs = Number.NEGATIVE_INFINITY;
  /** Null without a WAL: an in-memory database (tests), or SQLite syncing each commit itself. */
  private readonly walSync: WalSync | null;
  private closed = false;
  private suspended: string | undefined;

  constructor(options: DurableOutboxOptions) {
    this.clock = options.clock ?? { now: () => Date.now() };
    this.groupCommitMs = options.groupCommitMs ?? 2;
    this.groupCommitMaxPoints = options.groupCommitMaxPoints ?? 10_000;
    this.maxBacklogPoints = options.maxBacklogPoints ?? 50_000_000;
    this.dedupRetentionMs = options.dedupRetentionMs ?? 7 * DAY_MS;
    this.maxCachedPoints = options.maxCachedPoints ?? 200_000;
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    // ':memory:' answers 'memory': nothing to sync.
    const wal = this.db.pragma('journal_mode = WAL', { simple: true }) === 'wal';
    // An accepted batch must survive a power cut, not only a crash: in WAL mode commits write
    // the WAL and `walSync` flushes it before anything counts as accepted (see the class
    // comment). A file system without WAL support keeps SQLite's own fsync per commit.
    this.db.pragma(wal ? 'synchronous = NORMAL' : 'synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    // The WAL exists while a connection is open (SQLite creates it on open in WAL mode).
    this.walSync = wal
      ? new WalSync(openSync(`${options.path}-wal`, 'r+'), options.fdatasync ?? fdatasync)
      : null;
    this.stmt = prepareStatements(this.db);
    this.commitGroup = this.db.transaction(
      (group: readonly Queued[], deletes: readonly number[], now: number) => {
        for (const id of deletes) this.stmt.deleteBatch.run(id);
        return group.map((q) => this.store(q, now));
      },
    );
    const pending = this.db
      .prepare<[], { n: number; p: number | null }>(
        'SELECT COUNT(*) AS n, SUM(points) AS p FROM batches',
      )
      .get()!;
    this.pendingBatches = pending.n;
    this.pendingPoints = pending.p ?? 0;
    const quarantined = this.db
      .prepare<[], { n: number; p: number | null }>(
        'SELECT COUNT(*) AS n, SUM(points) AS p FROM quarantine',
      )
      .get()!;
    this.quarantinedBatches = quarantined.n;
    this.quarantinedPoints = quarantined.p ?? 0;
  }

  /**
   * Resolves once the batch is on disk ('accepted'), or at once if its (publisher, boot,
   * seq) was seen before ('duplicate'). Rejects with `OutboxFull` at the backlog bound,
   * with kind 'invalid' for a point no store could write, with kind 'unavailable' when the
   * disk fails. Batches without boot and seq are never duplicates.
   */
  accept(batch: OutboxBatchInput): Promise<'accepted' | 'duplicate'> {
    try {
      return this.enqueue(batch);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private enqueue(batch: OutboxBatchInput): Promise<'accepted' | 'duplicate'> {
    if (this.closed) {
      throw new AppError('unavailable', 'outbox_closed', 'telemetry outbox is closed');
    }
    if (this.suspended !== undefined) {
      throw new AppError('unavailable', 'outbox_suspended', this.suspended);
    }
    const count = batch.points.length;
    const boot = batch.boot !== undefined && batch.seq !== undefined ? batch.boot : undefined;
    const seq = boot !== undefined ? normalizeSeq(batch.seq!) : undefined;
    const body = encodePoints(batch.points);
    if (this.pendingPoints + this.queuedPoints + count > this.maxBacklogPoints) {
      // A replay of what is already on disk is still acknowledged: nothing to store.
      if (boot !== undefined && seq !== undefined && this.seenBefore(batch.publisher, boot, seq)) {
        return this.onDisk().then(() => 'duplicate' as const);
      }
      throw new OutboxFull(this.pendingPoints + this.queuedPoints, this.maxBacklogPoints);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({
        publisher: batch.publisher,
        boot,
        seq,
        count,
        body,
        points: batch.points,
        id: 0,
        resolve,
        reject,
      });
      this.queuedPoints += count;
      this.schedule();
    });
  }

  /**
   * Refuses new batches (kind 'unavailable', so they are not acked and devices retry) until
   * `resume`; those already queued are still committed. For a replica that lost the lease
   * on this file: another may be about to drain it.
   */
  suspend(reason: string): void {
    this.suspended = reason;
  }

  resume(): void {
    this.suspended = undefined;
  }

  /** Called after each commit that accepted at least one batch. Returns an unsubscribe. */
  onAccepted(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The batches first in line, in order, up to `maxPoints` points (at least one batch),
   * leaving out those in `skip` (a writer's batches already being written). Points of a batch
   * accepted by this process may be the very objects handed to `accept`: read them only.
   */
  async peek(maxPoints: number, skip?: ReadonlySet<number>): Promise<OutboxBatch[]> {
    const rows: Omit<BatchRow, 'body'>[] = [];
    let total = 0;
    for (const row of this.stmt.peek.iterate()) {
      if (this.removed.has(row.id) || skip?.has(row.id)) continue;
      if (rows.length > 0 && total + row.points > maxPoints) break;
      total += row.points;
      rows.push(row);
      if (total >= maxPoints) break;
    }
    // Bodies are read once the scan is closed: one statement at a time on the connection.
    return rows.map((row) => {
      this.sizes.set(row.id, row.points);
      const cached = this.cached.get(row.id);
      const batch: OutboxBatch = {
        id: row.id,
        publisher: row.publisher,
        acceptedMs: row.accepted_ms,
        points:
          cached !== undefined
            ? (cached as TelemetryPoint[])
            : decodePoints(this.stmt.body.get(row.id)!.body),
      };
      if (row.boot !== null) batch.boot = row.boot;
      if (row.seq_from !== null && row.seq_to !== null) batch.seq = [row.seq_from, row.seq_to];
      return batch;
    });
  }

  /**
   * Deletes batches the store has taken. Unknown ids are ignored. At once for `peek` and
   * `stats`; on disk with the next commit (see the class comment: a crash before it only
   * means writing those points to the store again).
   */
  async remove(ids: readonly number[]): Promise<void> {
    if (this.closed) {
      throw new AppError('unavailable', 'outbox_closed', 'telemetry outbox is closed');
    }
    for (const id of ids) {
      if (this.removed.has(id)) continue;
      const points = this.sizes.get(id) ?? this.stmt.pointsOf.get(id)?.points;
      if (points === undefined) continue;
      this.removed.add(id);
      this.forget(id);
      this.pendingBatches--;
      this.pendingPoints -= points;
    }
    if (this.removed.size > 0) this.schedule();
  }

  /** Moves a batch the store refused for good out of line, keeping it and the reason. */
  async quarantine(id: number, reason: string): Promise<void> {
    if (this.removed.has(id)) return;
    const text =
      reason.length > MAX_REASON_LENGTH ? `${reason.slice(0, MAX_REASON_LENGTH)}…` : reason;
    this.db.transaction(() => {
      if (this.stmt.toQuarantine.run(this.clock.now(), text, id).changes === 0) return;
      const row = this.stmt.remove.get(id)!;
      this.pendingBatches--;
      this.pendingPoints -= row.points;
      this.quarantinedBatches++;
      this.quarantinedPoints += row.points;
    })();
    this.forget(id);
    await this.onDisk();
  }

  /** Puts a quarantined batch back in line (at the end), e.g. after a schema fix. */
  async requeue(id: number): Promise<boolean> {
    const moved = this.db.transaction(() => {
      if (this.stmt.requeue.run(id).changes === 0) return false;
      const row = this.stmt.unquarantine.get(id)!;
      this.quarantinedBatches--;
      this.quarantinedPoints -= row.points;
      this.pendingBatches++;
      this.pendingPoints += row.points;
      return true;
    })();
    if (moved) this.notify();
    await this.onDisk();
    return moved;
  }

  async listQuarantine(limit: number): Promise<QuarantinedBatch[]> {
    return this.stmt.listQuarantine.all(limit).map((row) => {
      const item: QuarantinedBatch = {
        id: row.id,
        publisher: row.publisher,
        acceptedMs: row.accepted_ms,
        quarantinedMs: row.quarantined_ms,
        points: row.points,
        reason: row.reason,
      };
      if (row.boot !== null) item.boot = row.boot;
      if (row.seq_from !== null && row.seq_to !== null) item.seq = [row.seq_from, row.seq_to];
      return item;
    });
  }

  stats(): OutboxStats {
    return {
      pendingBatches: this.pendingBatches,
      pendingPoints: this.pendingPoints,
      oldestMs: this.pendingBatches === 0 ? null : this.oldestMs(),
      quarantinedBatches: this.quarantinedBatches,
      quarantinedPoints: this.quarantinedPoints,
    };
  }

  /** Acceptance time of the first batch not removed. */
  private oldestMs(): number | null {
    for (const row of this.stmt.oldest.iterate()) {
      if (!this.removed.has(row.id)) return row.accepted_ms;
    }
    return null;
  }

  private forget(id: number): void {
    this.sizes.delete(id);
    const points = this.cached.get(id);
    if (points === undefined) return;
    this.cached.delete(id);
    this.cachedPoints -= points.length;
  }

  /** Forgets seq ranges whose last batch is older than the retention. Returns rows deleted. */
  pruneSeen(): number {
    const now = this.clock.now();
    this.lastPruneMs = now;
    return this.stmt.pruneSeen.run(now - this.dedupRetentionMs).changes;
  }

  /** Resolves once every commit made so far is on disk. */
  private onDisk(): Promise<void> {
    return this.walSync === null ? Promise.resolve() : this.walSync.settled();
  }

  /** Commits what is queued, then closes the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // Those waiting for a sync get their answer before the descriptor goes. With none
    // pending (a file opened only to fold its WAL in) it closes before returning.
    if (this.walSync?.busy) await this.walSync.settled().catch(() => undefined);
    if (this.walSync !== null) closeSync(this.walSync.fd);
    this.db.close();
  }

  private schedule(): void {
    if (this.queuedPoints >= this.groupCommitMaxPoints) {
      this.immediate ??= setImmediate(() => this.flush());
    } else {
      this.timer ??= setTimeout(() => this.flush(), this.groupCommitMs);
    }
  }

  private flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    const group = this.queue;
    if (group.length === 0 && this.removed.size === 0) return;
    const deletes = [...this.removed];
    this.queue = [];
    this.queuedPoints = 0;
    const now = this.clock.now();
    let outcomes: ('accepted' | 'duplicate')[];
    try {
      outcomes = this.commitGroup(group, deletes, now);
    } catch (err) {
      const failure = new AppError(
        'unavailable',
        'outbox_unavailable',
        `telemetry outbox commit failed: ${(err as Error).message}`,
        { cause: err },
      );
      for (const q of group) q.reject(failure);
      return;
    }
    for (const id of deletes) this.removed.delete(id);
    let accepted = false;
    group.forEach((q, i) => {
      if (outcomes[i] === 'accepted' && q.count > 0) {
        this.pendingBatches++;
        this.pendingPoints += q.count;
        if (this.cachedPoints + q.count <= this.maxCachedPoints) {
          this.cached.set(q.id, q.points);
          this.cachedPoints += q.count;
        }
        accepted = true;
      }
    });
    // Committed: the writer may drain it already. Accepted (and so acknowledged) once on disk;
    // a duplicate too, as its original may be in this very commit or one still syncing.
    const answer = () => {
      for (let i = 0; i < group.length; i++) group[i]!.resolve(outcomes[i]!);
    };
    if (this.walSync === null) {
      answer();
    } else if (group.length > 0) {
      this.walSync.after((err) => {
        if (err === null) {
          answer();
          return;
        }
        // In the WAL but not known to be on disk: not acknowledged. The device sends it
        // again and, the commit being there, gets `duplicate`.
        const failure = new AppError(
          'unavailable',
          'outbox_unavailable',
          `telemetry outbox sync failed: ${err.message}`,
          { cause: err },
        );
        for (const q of group) q.reject(failure);
      });
    }
    if (now - this.lastPruneMs >= PRUNE_EVERY_MS) {
      try {
        this.pruneSeen();
      } catch {
        // Pruning is housekeeping; the next flush tries again.
      }
    }
    if (accepted) this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** Inside the group transaction: records the seq range and inserts the batch. */
  private store(q: Queued, now: number): 'accepted' | 'duplicate' {
    if (q.boot !== undefined && q.seq !== undefined) {
      if (!this.recordSeen(q.publisher, q.boot, q.seq, now)) return 'duplicate';
    }
    if (q.count > 0) {
      q.id = Number(
        this.stmt.insertBatch.run(
          q.publisher,
          q.boot ?? null,
          q.seq?.[0] ?? null,
          q.seq?.[1] ?? null,
          now,
          q.count,
          q.body,
        ).lastInsertRowid,
      );
    }
    return 'accepted';
  }

  /** The intervals that contain, overlap or touch `[from, to]`. */
  private neighbours(publisher: string, boot: string, [from, to]: readonly [number, number]) {
    const before = this.stmt.predecessor.get(publisher, boot, from - 1);
    const inside = this.stmt.within.all(publisher, boot, from - 1, to + 1);
    return before !== undefined && before.seq_to >= from - 1 ? [before, ...inside] : inside;
  }

  private seenBefore(publisher: string, boot: string, seq: readonly [number, number]): boolean {
    return this.neighbours(publisher, boot, seq).some(
      (i) => i.seq_from <= seq[0] && i.seq_to >= seq[1],
    );
  }

  /** Merges `seq` into the publisher's seen intervals; false when it was all seen before. */
  private recordSeen(
    publisher: string,
    boot: string,
    seq: readonly [number, number],
    now: number,
  ): boolean {
    const around = this.neighbours(publisher, boot, seq);
    if (around.some((i) => i.seq_from <= seq[0] && i.seq_to >= seq[1])) return false;
    let [from, to] = seq;
    for (const i of around) {
      from = Math.min(from, i.seq_from);
      to = Math.max(to, i.seq_to);
      this.stmt.deleteInterval.run(publisher, boot, i.seq_from);
    }
    this.stmt.insertInterval.run(publisher, boot, from, to, now);
    return true;
  }
}

/**
 * Group fdatasync of a WAL on the threadpool. `after(done)` calls `done` once a fdatasync
 * that started after the call has finished, i.e. with everything written before it on disk;
 * calls that arrive while one runs share the next.
 */
class WalSync {
  private running = false;
  private waiting: ((err: Error | null) => void)[] = [];

  constructor(
    readonly fd: number,
    private readonly sync: NonNullable<DurableOutboxOptions['fdatasync']>,
  ) {}

  get busy(): boolean {
    return this.running || this.waiting.length > 0;
  }

  after(done: (err: Error | null) => void): void {
    this.waiting.push(done);
    if (!this.running) this.start();
  }

  settled(): Promise<void> {
    return new Promise((resolve, reject) => this.after((err) => (err ? reject(err) : resolve())));
  }

  private start(): void {
    const these = this.waiting;
    this.waiting = [];
    this.running = true;
    this.sync(this.fd, (err) => {
      this.running = false;
      for (const done of these) done(err);
      if (this.waiting.length > 0) this.start();
    });
  }
}

function normalizeSeq(seq: readonly [number, number]): [number, number] {
  const [a, b] = seq;
  if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) {
    throw new AppError('invalid', 'invalid_seq', `seq must be two integers: ${a}, ${b}`);
  }
  return a <= b ? [a, b] : [b, a];
}

/**
 * Compact encoding of a batch's points (about a fifth of plain JSON): devices with their
 * tags and (metric, unit) pairs are listed once, then five entries per point:
 * `[1, t0, [[device, tags], …], [[metric, unit?], …], [deviceIx, keyIx, t - t0, value, marks, …]]`
 * where marks bit 0 = backfilled, bit 1 = unsynced. Throws for a point no store could
 * write (non-finite number, fractional time), so nothing unwritable gets on disk.
 */
export function encodePoints(points: readonly TelemetryPoint[]): string {
  const t0 = points.length > 0 ? points[0]!.timeMs : 0;
  const devices: [string, Readonly<Record<string, string>>][] = [];
  const deviceIx = new Map<string, number[]>();
  const keys: ([string] | [string, string])[] = [];
  // metric → unit (or undefined) → index in `keys`.
  const keyIx = new Map<string, Map<string | undefined, number>>();
  const flat: (number | string | boolean)[] = new Array(points.length * 5);
  // Points of one device come in runs: its index is looked up once per run.
  let lastDevice: string | undefined;
  let lastTags: Readonly<Record<string, string>> | undefined;
  let lastIndex = -1;
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    const v = p.value;
    if (!Number.isSafeInteger(p.timeMs)) {
      throw new AppError(
        'invalid',
        'invalid_point',
        `time is not an integer of milliseconds: ${p.timeMs}`,
      );
    }
    if (
      typeof v === 'number' ? !Number.isFinite(v) : typeof v !== 'string' && typeof v !== 'boolean'
    ) {
      throw new AppError(
        'invalid',
        'invalid_point',
        `not a finite number, string or boolean: ${String(v)}`,
      );
    }
    let d = -1;
    if (p.device === lastDevice && p.tags === lastTags) {
      d = lastIndex;
    } else {
      const candidates = deviceIx.get(p.device);
      if (candidates !== undefined) {
        for (const c of candidates) if (sameTags(devices[c]![1], p.tags)) d = c;
      }
      if (d < 0) {
        d = devices.push([p.device, p.tags]) - 1;
        if (candidates === undefined) deviceIx.set(p.device, [d]);
        else candidates.push(d);
      }
      lastDevice = p.device;
      lastTags = p.tags;
      lastIndex = d;
    }
    let units = keyIx.get(p.metric);
    if (units === undefined) {
      units = new Map();
      keyIx.set(p.metric, units);
    }
    let k = units.get(p.unit);
    if (k === undefined) {
      k = keys.push(p.unit === undefined ? [p.metric] : [p.metric, p.unit]) - 1;
      units.set(p.unit, k);
    }
    const j = i * 5;
    flat[j] = d;
    flat[j + 1] = k;
    flat[j + 2] = p.timeMs - t0;
    flat[j + 3] = v;
    flat[j + 4] = (p.backfilled === true ? 1 : 0) | (p.unsynced === true ? 2 : 0);
  }
  return JSON.stringify([1, t0, devices, keys, flat]);
}

export function decodePoints(body: string): TelemetryPoint[] {
  const [version, t0, devices, keys, flat] = JSON.parse(body) as [
    number,
    number,
    [string, Record<string, string>][],
    ([string] | [string, string])[],
    (number | string | boolean)[],
  ];
  if (version !== 1) throw new Error(`unknown outbox encoding ${version}`);
  const points = new Array<TelemetryPoint>(flat.length / 5);
  for (let i = 0, j = 0; j < flat.length; i++, j += 5) {
    const [device, tags] = devices[flat[j] as number]!;
    const key = keys[flat[j + 1] as number]!;
    const marks = flat[j + 4] as number;
    const p: TelemetryPoint = {
      device,
      metric: key[0],
      timeMs: t0 + (flat[j + 2] as number),
      value: flat[j + 3]!,
      tags,
    };
    if (key.length === 2) p.unit = key[1];
    if (marks & 1) p.backfilled = true;
    if (marks & 2) p.unsynced = true;
    points[i] = p;
  }
  return points;
}

function sameTags(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}
