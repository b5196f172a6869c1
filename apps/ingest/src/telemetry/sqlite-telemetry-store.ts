import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  type LatestRow,
  type RangeQuery,
  type SeriesRow,
  StoreRefused,
  StoreUnavailable,
  type TelemetryPoint,
  type TelemetryStore,
} from './telemetry-store.js';

/**
 * The embedded telemetry store: one SQLite file in WAL mode. One row per (device, metric,
 * time_ms), the primary key of a WITHOUT ROWID table, so a range is one index walk and a
 * rewrite replaces. Each value type has its own column, as each has its own field in
 * InfluxDB (SCHEMA.md). Registry tags are kept once per distinct set in `tag_sets`.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tag_sets (
  id INTEGER PRIMARY KEY,
  tags TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS points (
  device TEXT NOT NULL,
  metric TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  num REAL,
  txt TEXT,
  flag INTEGER,
  unit TEXT,
  -- bit 0: backfilled, bit 1: unsynced (PROTOCOL.md §5 bf, cq)
  marks INTEGER NOT NULL DEFAULT 0,
  tag_set INTEGER REFERENCES tag_sets (id),
  PRIMARY KEY (device, metric, time_ms)
) WITHOUT ROWID;
PRAGMA user_version = 1;
`;

interface ValueColumns {
  num: number | null;
  txt: string | null;
  flag: number | null;
}

/** The most metrics `latest` answers for one device. */
const MAX_LATEST_METRICS = 10_000;
/** Distinct tag sets remembered in memory before the cache starts over. */
const MAX_CACHED_TAG_SETS = 100_000;

function rowValue(row: ValueColumns): SeriesRow['value'] {
  if (row.num !== null) return row.num;
  if (row.txt !== null) return row.txt;
  if (row.flag !== null) return row.flag === 1;
  return null;
}

function checkPoint(p: TelemetryPoint): void {
  if (!Number.isSafeInteger(p.timeMs)) {
    throw new StoreRefused(`time is not an integer of milliseconds: ${p.timeMs}`);
  }
  const type = typeof p.value;
  if (type === 'number' ? !Number.isFinite(p.value) : type !== 'string' && type !== 'boolean') {
    throw new StoreRefused(`not a finite number, a string or a boolean: ${String(p.value)}`);
  }
}

/** `floor(time_ms / e) * e` for negative times too (SQLite's `/` truncates toward zero). */
const WINDOW = '(time_ms - ((time_ms % :every) + :every) % :every)';
const RANGE = 'device = :device AND metric = :metric AND time_ms >= :from AND time_ms < :to';

const AGGREGATE_SQL = {
  mean: `SELECT ${WINDOW} AS w, AVG(num) AS v FROM points WHERE ${RANGE} AND num IS NOT NULL GROUP BY w ORDER BY w LIMIT :limit`,
  min: `SELECT ${WINDOW} AS w, MIN(num) AS v FROM points WHERE ${RANGE} AND num IS NOT NULL GROUP BY w ORDER BY w LIMIT :limit`,
  max: `SELECT ${WINDOW} AS w, MAX(num) AS v FROM points WHERE ${RANGE} AND num IS NOT NULL GROUP BY w ORDER BY w LIMIT :limit`,
  sum: `SELECT ${WINDOW} AS w, SUM(num) AS v FROM points WHERE ${RANGE} AND num IS NOT NULL GROUP BY w ORDER BY w LIMIT :limit`,
  count: `SELECT ${WINDOW} AS w, COUNT(*) AS v FROM points WHERE ${RANGE} GROUP BY w ORDER BY w LIMIT :limit`,
  // With MIN()/MAX(), SQLite takes the bare columns from the row holding the extreme.
  first: `SELECT ${WINDOW} AS w, MIN(time_ms), num, txt, flag FROM points WHERE ${RANGE} GROUP BY w ORDER BY w LIMIT :limit`,
  last: `SELECT ${WINDOW} AS w, MAX(time_ms), num, txt, flag FROM points WHERE ${RANGE} GROUP BY w ORDER BY w LIMIT :limit`,
} as const;

// Hops from one metric of the device to the next through the primary key, then takes each
// metric's newest row: O(metrics · log n), whatever the number of points. CROSS JOIN keeps
// `metrics` the outer loop (otherwise SQLite walks every point of the device).
const LATEST_SQL = `
WITH RECURSIVE metrics (m, n) AS (
  SELECT (SELECT metric FROM points WHERE device = :device ORDER BY metric LIMIT 1), 1
  UNION ALL
  SELECT (SELECT metric FROM points WHERE device = :device AND metric > m ORDER BY metric LIMIT 1), n + 1
  FROM metrics WHERE m IS NOT NULL AND n < ${MAX_LATEST_METRICS}
)
SELECT p.metric, p.time_ms, p.num, p.txt, p.flag, p.unit
FROM metrics CROSS JOIN points p
  ON p.device = :device AND p.metric = metrics.m
 AND p.time_ms = (SELECT MAX(time_ms) FROM points WHERE device = :device AND metric = metrics.m)
ORDER BY p.metric`;

export class SqliteTelemetryStore implements TelemetryStore {
  private readonly db: Database.Database;
  private readonly insert: Database.Statement;
  private readonly insertTagSet: Database.Statement<[string]>;
  private readonly tagSetId: Database.Statement<[string], { id: number }>;
  private readonly writeAll: (points: readonly TelemetryPoint[]) => void;
  private tagSetsByObject = new WeakMap<object, number | null>();
  private readonly statements = new Map<string, Database.Statement>();
  private readonly tagSetsByJson = new Map<string, number>();

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // The outbox deletes a batch once this returns: a commit must survive a power cut.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.insert = this.db.prepare(
      `INSERT OR REPLACE INTO points (device, metric, time_ms, num, txt, flag, unit, marks, tag_set)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertTagSet = this.db.prepare('INSERT OR IGNORE INTO tag_sets (tags) VALUES (?)');
    this.tagSetId = this.db.prepare('SELECT id FROM tag_sets WHERE tags = ?');
    this.writeAll = this.db.transaction((points: readonly TelemetryPoint[]) => {
      for (const p of points) {
        const v = p.value;
        this.insert.run(
          p.device,
          p.metric,
          p.timeMs,
          typeof v === 'number' ? v : null,
          typeof v === 'string' ? v : null,
          typeof v === 'boolean' ? (v ? 1 : 0) : null,
          p.unit ?? null,
          (p.backfilled === true ? 1 : 0) | (p.unsynced === true ? 2 : 0),
          this.tagSet(p.tags),
        );
      }
    });
  }

  async write(points: readonly TelemetryPoint[]): Promise<void> {
    if (points.length === 0) return;
    for (const p of points) checkPoint(p);
    try {
      this.writeAll(points);
    } catch (err) {
      // Tag sets inserted by the rolled-back transaction are gone again.
      this.tagSetsByObject = new WeakMap();
      this.tagSetsByJson.clear();
      // Disk full, I/O error, locked: nothing is wrong with the points.
      throw new StoreUnavailable(`sqlite write failed: ${(err as Error).message}`, undefined, {
        cause: err,
      });
    }
  }

  async query(q: RangeQuery): Promise<SeriesRow[]> {
    // SQLite reads a negative LIMIT as "no limit".
    if (q.limit < 1) return [];
    const params = {
      device: q.device,
      metric: q.metric,
      from: q.fromMs,
      to: q.toMs,
      limit: q.limit,
    };
    if (q.everyMs === undefined) {
      const rows = this.statement(
        `SELECT time_ms, num, txt, flag FROM points WHERE ${RANGE} ORDER BY time_ms LIMIT :limit`,
      ).all(params) as (ValueColumns & { time_ms: number })[];
      return rows.map((r) => ({ timeMs: r.time_ms, value: rowValue(r) }));
    }
    if (!Number.isSafeInteger(q.everyMs) || q.everyMs <= 0) {
      throw new RangeError(`everyMs must be a positive integer: ${q.everyMs}`);
    }
    const fn = q.fn ?? 'mean';
    const all = { ...params, every: q.everyMs };
    if (fn === 'first' || fn === 'last') {
      const rows = this.statement(AGGREGATE_SQL[fn]).all(all) as (ValueColumns & { w: number })[];
      return rows.map((r) => ({ timeMs: r.w, value: rowValue(r) }));
    }
    const rows = this.statement(AGGREGATE_SQL[fn]).all(all) as { w: number; v: number | null }[];
    return rows.map((r) => ({ timeMs: r.w, value: r.v }));
  }

  async latest(device: string): Promise<LatestRow[]> {
    const rows = this.statement(LATEST_SQL).all({ device }) as (ValueColumns & {
      metric: string;
      time_ms: number;
      unit: string | null;
    })[];
    return rows.map((r) => {
      const row: LatestRow = { metric: r.metric, timeMs: r.time_ms, value: rowValue(r) ?? 0 };
      if (r.unit !== null) row.unit = r.unit;
      return row;
    });
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private statement(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  /** The id of a registry tag set, stored once; null for no tags. */
  private tagSet(tags: Readonly<Record<string, string>>): number | null {
    const known = this.tagSetsByObject.get(tags);
    if (known !== undefined) return known;
    const keys = Object.keys(tags).sort();
    let id: number | null = null;
    if (keys.length > 0) {
      const json = JSON.stringify(Object.fromEntries(keys.map((k) => [k, tags[k]])));
      const cached = this.tagSetsByJson.get(json);
      if (cached !== undefined) {
        id = cached;
      } else {
        this.insertTagSet.run(json);
        id = this.tagSetId.get(json)!.id;
        if (this.tagSetsByJson.size >= MAX_CACHED_TAG_SETS) this.tagSetsByJson.clear();
        this.tagSetsByJson.set(json, id);
      }
    }
    this.tagSetsByObject.set(tags, id);
    return id;
  }
}
