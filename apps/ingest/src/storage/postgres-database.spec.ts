import { describe, expect, it } from 'vitest';
import { StorageUnavailable } from '../errors.js';
import { isUnavailable, isUniqueViolation, PostgresDatabase } from './postgres-database.js';

// Pure classification; no server. Creating a pool opens no connection. Transactions,
// migrations and outages run against real PostgreSQL in the stores' contract suites
// (test/postgres-*.int.spec.ts, test/cluster-leases.int.spec.ts).

const withCode = (code: string, message = 'boom') => Object.assign(new Error(message), { code });

describe('isUnavailable', () => {
  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '08006', '53300', '57P01', '57P03'])(
    'counts %s as unavailable',
    (code) => {
      expect(isUnavailable(withCode(code))).toBe(true);
    },
  );

  it('counts a dropped connection and a connect timeout as unavailable', () => {
    expect(isUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true);
  });

  it('leaves statement errors and non-errors alone', () => {
    expect(isUnavailable(withCode('23505'))).toBe(false);
    expect(isUnavailable(withCode('57P04'))).toBe(false);
    expect(isUnavailable(withCode('42P01'))).toBe(false);
    expect(isUnavailable('ECONNREFUSED')).toBe(false);
    expect(isUnavailable(null)).toBe(false);
  });
});

describe('isUniqueViolation', () => {
  const violation = Object.assign(withCode('23505'), { constraint: 'alerts_one_open' });

  it('matches SQLSTATE 23505, of the named constraint when one is given', () => {
    expect(isUniqueViolation(violation)).toBe(true);
    expect(isUniqueViolation(violation, 'alerts_one_open')).toBe(true);
    expect(isUniqueViolation(violation, 'devices_pkey')).toBe(false);
    expect(isUniqueViolation(withCode('23503'))).toBe(false);
    expect(isUniqueViolation(undefined)).toBe(false);
  });
});

describe('PostgresDatabase.mapError', () => {
  const url = 'postgres://nobody@127.0.0.1:1/none';

  it('turns a connection failure into StorageUnavailable named after the store', async () => {
    const db = new PostgresDatabase(url, { poolSize: 1, storeName: 'registry' });
    const cause = withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1');
    const mapped = db.mapError(cause);
    expect(mapped).toBeInstanceOf(StorageUnavailable);
    expect((mapped as Error).message).toBe(
      'PostgreSQL registry unavailable: connect ECONNREFUSED 127.0.0.1:1',
    );
    expect((mapped as Error).cause).toBe(cause);
    await db.close();
  });

  it('passes statement errors and already mapped errors through', async () => {
    const db = new PostgresDatabase(url, { poolSize: 1, storeName: 'registry' });
    const statement = withCode('23505');
    const mapped = new StorageUnavailable('PostgreSQL registry unavailable: Connection terminated');
    expect(db.mapError(statement)).toBe(statement);
    expect(db.mapError(mapped)).toBe(mapped);
    await db.close();
  });

  it('passes every error through when no store is named', async () => {
    const db = new PostgresDatabase(url, { poolSize: 1 });
    const cause = withCode('ECONNREFUSED');
    expect(db.mapError(cause)).toBe(cause);
    await Promise.all([db.close(), db.close()]);
  });
});
