import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteDatabase } from './sqlite-database.js';

// Real SQLite (better-sqlite3) on temporary files.
const dir = mkdtempSync(join(tmpdir(), 'outpost-sqlite-'));
let n = 0;
const fresh = () => new SqliteDatabase(join(dir, `db-${++n}`, 'store.db'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CREATE_A = { version: 1, sql: 'CREATE TABLE a (id INTEGER PRIMARY KEY)' };
const CREATE_B = { version: 2, sql: 'CREATE TABLE b (id INTEGER PRIMARY KEY)' };
const BROKEN = { version: 3, sql: 'CREATE TABLE nonsense (' };

const versions = (db: SqliteDatabase, table: string) =>
  db.db
    .prepare<[], { version: number }>(`SELECT version FROM ${table} ORDER BY version`)
    .all()
    .map((r) => r.version);
const tables = (db: SqliteDatabase) =>
  db.db
    .prepare<[], { name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('a', 'b') ORDER BY name",
    )
    .all()
    .map((r) => r.name);

describe('SqliteDatabase', () => {
  it('opens in WAL mode with full durability and foreign keys', () => {
    const db = fresh();
    expect(db.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.db.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(db.db.pragma('foreign_keys', { simple: true })).toBe(1);
    db.close();
  });

  it('makes the directory with the given mode', () => {
    const path = join(dir, `private-${++n}`, 'store.db');
    const db = new SqliteDatabase(path, { dirMode: 0o700 });
    expect(statSync(join(dir, `private-${n}`)).mode & 0o777).toBe(0o700);
    db.close();
  });

  it('applies each migration once and records it in its table', () => {
    const db = fresh();
    db.migrate({ table: 'x_migrations', migrations: [CREATE_A], transactions: 'one' });
    db.migrate({ table: 'x_migrations', migrations: [CREATE_A, CREATE_B], transactions: 'one' });
    db.migrate({ table: 'x_migrations', migrations: [CREATE_A, CREATE_B], transactions: 'each' });
    expect(versions(db, 'x_migrations')).toEqual([1, 2]);
    expect(tables(db)).toEqual(['a', 'b']);
    db.close();
  });

  it.each([
    { transactions: 'one' as const, kept: [], made: [] },
    { transactions: 'each' as const, kept: [1, 2], made: ['a', 'b'] },
  ])("'$transactions' keeps $kept when a later migration fails", ({ transactions, kept, made }) => {
    const db = fresh();
    const migrations = [CREATE_A, CREATE_B, BROKEN];
    expect(() => db.migrate({ table: 'x_migrations', migrations, transactions })).toThrow();
    expect(versions(db, 'x_migrations')).toEqual(kept);
    expect(tables(db)).toEqual(made);
    db.close();
  });

  it('prepares a statement once', () => {
    const db = fresh();
    expect(db.prepare('SELECT 1')).toBe(db.prepare('SELECT 1'));
    expect(db.prepare('SELECT 1')).not.toBe(db.prepare('SELECT 2'));
    db.close();
  });

  it('pings while open and closes idempotently', () => {
    const db = fresh();
    expect(() => db.ping()).not.toThrow();
    db.close();
    db.close();
    expect(() => db.ping()).toThrow();
  });
});
