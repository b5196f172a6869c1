import http from 'node:http';
import https from 'node:https';
import { HttpError, InfluxDB, type Transport } from '@influxdata/influxdb-client';
import type { AppError } from '@outpost/protocol/errors';
import type { Clock } from '../injection.js';
import { storedName, toLines, UnwritablePoint } from './line-protocol.js';
import {
  type AggregateFunction,
  type LatestRow,
  type RangeQuery,
  type SeriesRow,
  StoreRefused,
  StoreUnavailable,
  type TelemetryPoint,
  type TelemetryStore,
} from './telemetry-store.js';

/**
 * Telemetry in InfluxDB (schema: line-protocol.ts, SCHEMA.md).
 *
 * Writes: `v2` posts to `/api/v2/write` (InfluxDB 2.x, 3.x, Cloud, VictoriaMetrics), `v1`
 * to `/write` (InfluxDB 1.x). Both go through the official client's HTTP transport, not
 * its WriteApi: the WriteApi keeps retries in memory, drops a batch on 400/401 and reads
 * Retry-After as milliseconds, while durability and retries belong to our outbox. So one
 * call is one HTTP request and its outcome is classified here, exactly:
 *
 *   2xx                  written
 *   400, 413, 422        StoreRefused with the server's message (retrying cannot help)
 *   408, 429, 5xx, network error, timeout
 *                        StoreUnavailable, `retryAfterS` from Retry-After (seconds or an
 *                        HTTP-date, RFC 9110 §10.2.3)
 *   401, 403, 404, other StoreUnavailable code `store_misconfigured`: keep the data, retry
 *                        slowly until an operator fixes the token, database or bucket
 *
 * Queries: InfluxQL over `GET /query?db=…&epoch=ms`, which InfluxDB 1.x, 2.x (through a
 * DBRP mapping) and 3.x all serve; `db` is the bucket in `v2` mode. Every identifier is
 * double-quoted and every string literal single-quoted with escapes, so no name can change
 * a query's meaning.
 */

export interface InfluxTelemetryStoreOptions {
  /** Base URL, e.g. `http://127.0.0.1:8086`. */
  url: string;
  api: 'v1' | 'v2';
  /** Sent as `Authorization: Token …` (InfluxDB 2/3 token; `user:password` for 1.8+). */
  token?: string;
  /** v2: the organization (InfluxDB 2.x needs it; 3.x and VictoriaMetrics ignore it). */
  org?: string;
  /** v2: the bucket; also the database InfluxQL queries name. */
  bucket?: string;
  /** v1: the database. */
  database?: string;
  /** v1: a retention policy other than the database's default. */
  retentionPolicy?: string;
  /** Per request; 10 s by default. */
  timeoutMs?: number;
  /** Reads Retry-After HTTP-dates; the system clock by default. */
  clock?: Clock;
}

interface InfluxQlSeries {
  name: string;
  columns: string[];
  values: unknown[][];
}

interface InfluxQlResponse {
  results?: { statement_id?: number; error?: string; series?: InfluxQlSeries[] }[];
  error?: string;
}

const MAX_MESSAGE_LENGTH = 500;

/** An InfluxQL double-quoted identifier. */
export function influxqlIdent(name: string): string {
  return `"${name.replace(/[\\"]/g, '\\$&')}"`;
}

/** An InfluxQL single-quoted string literal. */
export function influxqlString(text: string): string {
  return `'${text.replace(/[\\']/g, '\\$&')}'`;
}

function integer(n: number, what: string): number {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} must be an integer: ${n}`);
  return n;
}

/**
 * Retry-After in seconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). Undefined when
 * absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // An HTTP-date names its day and month; a bare number is no date.
  if (!/[A-Za-z]/.test(text)) return undefined;
  const at = Date.parse(text);
  if (!Number.isFinite(at)) return undefined;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}

function headerOf(err: HttpError, name: string): string | undefined {
  const value = err.headers?.[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The server's own words: `message` (v2) or `error` (v1) of a JSON body, else the body. */
function serverMessage(err: HttpError): string {
  let text = err.body ?? '';
  try {
    const json = JSON.parse(text) as { message?: unknown; error?: unknown };
    if (typeof json.message === 'string') text = json.message;
    else if (typeof json.error === 'string') text = json.error;
  } catch {
    // Not JSON: keep the body as it is.
  }
  text = text.trim() || err.statusMessage || `HTTP ${err.statusCode}`;
  return text.length > MAX_MESSAGE_LENGTH ? `${text.slice(0, MAX_MESSAGE_LENGTH)}…` : text;
}

/** One failed request as StoreRefused or StoreUnavailable (see the table above). */
export function classifyFailure(err: unknown, what: string, nowMs: number): AppError {
  if (err instanceof HttpError) {
    const status = err.statusCode;
    const message = `${what} answered ${status}: ${serverMessage(err)}`;
    if (status === 400 || status === 413 || status === 422) {
      return new StoreRefused(message, { cause: err });
    }
    const retryAfterS = parseRetryAfter(headerOf(err, 'retry-after'), nowMs);
    if (status === 408 || status === 429 || status >= 500) {
      return new StoreUnavailable(message, retryAfterS, { cause: err });
    }
    return new StoreUnavailable(message, retryAfterS, { cause: err, code: 'store_misconfigured' });
  }
  const reason = err instanceof Error ? err.message : String(err);
  return new StoreUnavailable(`${what} failed: ${reason}`, undefined, { cause: err });
}

const SELECTORS: Record<AggregateFunction, string> = {
  mean: 'mean("value")',
  min: 'min("value")',
  max: 'max("value")',
  sum: 'sum("value")',
  // Strings and booleans count too, as in the SQLite store: one count per field, added up.
  count: 'count("value"),count("text"),count("flag")',
  first: 'first("value"),first("text"),first("flag")',
  last: 'last("value"),last("text"),last("flag")',
};

export class InfluxTelemetryStore implements TelemetryStore {
  private readonly transport: Transport;
  private readonly agent: http.Agent;
  private readonly writePath: string;
  private readonly database: string;
  private readonly retentionPolicy: string | undefined;
  private readonly clock: Clock;

  constructor(options: InfluxTelemetryStoreOptions) {
    if (options.api === 'v2') {
      if (!options.bucket) throw new TypeError('InfluxDB v2 API needs a bucket');
      this.database = options.bucket;
      const params = new URLSearchParams({ bucket: options.bucket, precision: 'ms' });
      if (options.org) params.set('org', options.org);
      this.writePath = `/api/v2/write?${params}`;
    } else {
      if (!options.database) throw new TypeError('InfluxDB v1 API needs a database');
      this.database = options.database;
      const params = new URLSearchParams({ db: options.database, precision: 'ms' });
      if (options.retentionPolicy) params.set('rp', options.retentionPolicy);
      this.writePath = `/write?${params}`;
    }
    this.retentionPolicy = options.api === 'v1' ? options.retentionPolicy : undefined;
    this.clock = options.clock ?? { now: () => Date.now() };
    const url = options.url.replace(/\/+$/, '');
    this.agent = url.startsWith('https:')
      ? new https.Agent({ keepAlive: true })
      : new http.Agent({ keepAlive: true });
    this.transport = new InfluxDB({
      url,
      ...(options.token ? { token: options.token } : {}),
      timeout: options.timeoutMs ?? 10_000,
      transportOptions: { agent: this.agent },
    }).transport;
  }

  async write(points: readonly TelemetryPoint[]): Promise<void> {
    if (points.length === 0) return;
    let body: string;
    try {
      body = toLines(points);
    } catch (err) {
      if (err instanceof UnwritablePoint) throw new StoreRefused(err.message, { cause: err });
      throw err;
    }
    await this.request('write', this.writePath, 'POST', body, {
      'content-type': 'text/plain; charset=utf-8',
    });
  }

  async query(q: RangeQuery): Promise<SeriesRow[]> {
    // InfluxQL reads LIMIT 0 as "no limit".
    if (q.limit < 1) return [];
    const where = `WHERE "device" = ${influxqlString(storedName(q.device))} AND time >= ${integer(q.fromMs, 'fromMs')}ms AND time < ${integer(q.toMs, 'toMs')}ms`;
    const from = `FROM ${influxqlIdent(storedName(q.metric))}`;
    const limit = `LIMIT ${integer(q.limit, 'limit')}`;
    if (q.everyMs === undefined) {
      const [series] = await this.influxql(
        `SELECT "value","text","flag" ${from} ${where} ORDER BY time ASC ${limit}`,
      );
      return (series?.[0]?.values ?? []).map((row) => ({
        timeMs: row[0] as number,
        value: firstNonNull(row, 1) ?? null,
      }));
    }
    if (integer(q.everyMs, 'everyMs') <= 0) throw new RangeError('everyMs must be positive');
    const fn = q.fn ?? 'mean';
    const [series] = await this.influxql(
      `SELECT ${SELECTORS[fn]} ${from} ${where} GROUP BY time(${q.everyMs}ms) fill(none) ${limit}`,
    );
    return (series?.[0]?.values ?? []).map((row) => ({
      timeMs: row[0] as number,
      value: fn === 'count' ? sumCounts(row) : (firstNonNull(row, 1) ?? null),
    }));
  }

  /**
   * One query per value field: with several selectors in one statement InfluxQL reports
   * the time of neither. Each scans only the device's series of each measurement (tag
   * index), so the work is bounded by the device's metrics.
   */
  async latest(device: string): Promise<LatestRow[]> {
    const where = `WHERE "device" = ${influxqlString(storedName(device))}`;
    // Settle all three before failing, so no request outlives the call.
    const settled = await Promise.allSettled(
      ['value', 'text', 'flag'].map((field) =>
        this.influxql(`SELECT last(${influxqlIdent(field)}),"unit" FROM /.*/ ${where}`),
      ),
    );
    const answers = settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return s.value;
    });
    const latest = new Map<string, LatestRow>();
    for (const [series] of answers) {
      for (const s of series ?? []) {
        const row = s.values[0];
        if (row === undefined || row[1] === null || row[1] === undefined) continue;
        const seen = latest.get(s.name);
        const timeMs = row[0] as number;
        if (seen !== undefined && seen.timeMs >= timeMs) continue;
        const next: LatestRow = {
          metric: s.name,
          timeMs,
          value: row[1] as LatestRow['value'],
        };
        if (typeof row[2] === 'string' && row[2] !== '') next.unit = row[2];
        latest.set(s.name, next);
      }
    }
    return [...latest.values()].sort((a, b) =>
      a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0,
    );
  }

  async ping(): Promise<void> {
    await this.request('ping', '/ping', 'GET', undefined, {});
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /** Runs one InfluxQL statement; the series of each statement result. */
  private async influxql(statement: string): Promise<InfluxQlSeries[][]> {
    const params = new URLSearchParams({ db: this.database, q: statement, epoch: 'ms' });
    if (this.retentionPolicy) params.set('rp', this.retentionPolicy);
    const body = (await this.request('query', `/query?${params}`, 'GET', undefined, {
      accept: 'application/json',
    })) as InfluxQlResponse | string;
    const answer: InfluxQlResponse = typeof body === 'string' ? JSON.parse(body) : body;
    const error = answer.error ?? answer.results?.find((r) => r.error !== undefined)?.error;
    if (error !== undefined) {
      if (/database not found|bucket not found/i.test(error)) {
        throw new StoreUnavailable(`query: ${error}`, undefined, { code: 'store_misconfigured' });
      }
      throw new StoreRefused(`query refused: ${error}`);
    }
    return (answer.results ?? []).map((r) => r.series ?? []);
  }

  private async request(
    what: string,
    path: string,
    method: string,
    body: string | undefined,
    headers: Record<string, string>,
  ): Promise<unknown> {
    try {
      return await this.transport.request(path, body, { method, headers });
    } catch (err) {
      throw classifyFailure(err, what, this.clock.now());
    }
  }
}

function firstNonNull(row: unknown[], from: number): SeriesRow['value'] | undefined {
  for (let i = from; i < row.length; i++) {
    const v = row[i];
    if (v !== null && v !== undefined) return v as SeriesRow['value'];
  }
  return undefined;
}

function sumCounts(row: unknown[]): number {
  let total = 0;
  for (let i = 1; i < row.length; i++) if (typeof row[i] === 'number') total += row[i] as number;
  return total;
}
