import { AppError } from '@outpost/protocol/errors';

/**
 * Where accepted telemetry ends up. Two implementations (SQLite, InfluxDB v1/v2) behind one
 * port, one contract suite (`telemetry-store.contract.ts`).
 */

/** One stored reading: a resolved SenML record enriched with registry tags. */
export interface TelemetryPoint {
  /** The device the reading is about (the publisher or one of its children). */
  device: string;
  metric: string;
  /** Epoch milliseconds (integer). Points with the same device, metric and time overwrite. */
  timeMs: number;
  value: number | boolean | string;
  unit?: string;
  /** Registry tags of `device` at acceptance (bounded by the registry's tag limits). */
  tags: Readonly<Record<string, string>>;
  /** Sent late from an edge outbox (PROTOCOL.md §5 `bf`). */
  backfilled?: boolean;
  /** The sender's clock was not known to be synced (PROTOCOL.md §5 `cq`). */
  unsynced?: boolean;
}

export const AGGREGATE_FUNCTIONS = ['mean', 'min', 'max', 'sum', 'count', 'first', 'last'] as const;
export type AggregateFunction = (typeof AGGREGATE_FUNCTIONS)[number];

export interface RangeQuery {
  device: string;
  metric: string;
  /** Inclusive. */
  fromMs: number;
  /** Exclusive: the range is `[fromMs, toMs)`. */
  toMs: number;
  /**
   * Aggregation window in milliseconds; absent = raw points. Windows start at multiples of
   * `everyMs` since the epoch (`floor(time / everyMs) * everyMs`); empty windows are left out.
   */
  everyMs?: number;
  /** Defaults to `mean` when `everyMs` is set. Only `count`, `first`, `last` apply to text/booleans. */
  fn?: AggregateFunction;
  /** Maximum number of rows returned (raw points or windows). */
  limit: number;
}

export interface SeriesRow {
  /** The point's time, or the start of its window. */
  timeMs: number;
  value: number | boolean | string | null;
}

export interface LatestRow {
  metric: string;
  timeMs: number;
  value: number | boolean | string;
  unit?: string;
}

/** The store refused these points for good (e.g. InfluxDB 400): retrying will not help. */
export class StoreRefused extends AppError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('invalid', 'store_refused', message, options);
  }
}

/**
 * The store is unreachable or overloaded: retry later, after `retryAfterS` if given. Code
 * `store_misconfigured` (bad credentials, unknown database or bucket) is still worth
 * retrying, since nothing is wrong with the data, but slowly: only an operator fixes it.
 */
export class StoreUnavailable extends AppError {
  constructor(
    message: string,
    readonly retryAfterS?: number,
    options: { cause?: unknown; code?: 'store_unavailable' | 'store_misconfigured' } = {},
  ) {
    super('unavailable', options.code ?? 'store_unavailable', message, { cause: options.cause });
  }
}

/** Injection token of the configured store. */
export const TELEMETRY_STORE = Symbol('TELEMETRY_STORE');

export interface TelemetryStore {
  /**
   * Writes points. Idempotent: writing the same point again (device, metric, time) leaves
   * one point. Throws `StoreRefused` (nothing of a batch with a non-finite number or a
   * non-integer time is written) or `StoreUnavailable`.
   */
  write(points: readonly TelemetryPoint[]): Promise<void>;
  query(q: RangeQuery): Promise<SeriesRow[]>;
  /** The latest value of every metric of a device, sorted by metric. */
  latest(device: string): Promise<LatestRow[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
