import type { Logger } from 'pino';
import type { Clock } from '../injection.js';
import { advisoryTransactionLock, PostgresDatabase } from '../storage/postgres-database.js';
import {
  type Lease,
  type LeaseOptions,
  LeaseSignals,
  type Leases,
  type LeaseTimers,
  monotonicClock,
  systemLeaseTimers,
} from './lease.js';

/*
 * Why a lease table with an expiry rather than session advisory locks
 * (`pg_try_advisory_lock` on a dedicated connection):
 * - a lost lock is only noticed when the server notices the lost connection, which for a
 *   half-open TCP connection (a partition, a frozen VM) is whenever keepalives give up:
 *   minutes, not a bound we choose. With an expiry, the holder stops at its own deadline and
 *   the others take over once the server's clock passes `expires_at`: both bounded by the TTL.
 * - the holder's deadline is counted from before it sent the renewal, the server's from when
 *   it ran it, so the holder always stops first (less a margin for clock-rate drift); only
 *   the server's clock compares expiries, so skew between replicas does not matter.
 * - a row carries a fencing token (+1 per new holder), and a grace period for adoption
 *   (`takeOverAfterMs`: expired for at least this long), which a lock cannot express.
 * - it works through a transaction pooler (PgBouncer), which session locks do not.
 * The cost is one small UPDATE per lease every `renewMs`.
 */

// Advisory lock key (per database) for the migration only: "out" + 0x30 (registry 1 and 2,
// alerts 0x10, OTA 0x20).
const LOCK_MIGRATE = 0x6f7574_0030;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cluster_leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  token BIGINT NOT NULL,
  acquired_at TIMESTAMPTZ NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL
)`;

// Renews for the current holder while unexpired; otherwise takes it over once it has been
// expired for $4 ms, with a new token. One statement: the row lock orders racing claimants.
const CLAIM = `
INSERT INTO cluster_leases AS l (name, holder, token, acquired_at, expires_at)
VALUES ($1, $2, 1, clock_timestamp(), clock_timestamp() + $3 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE SET
  token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
               THEN l.token ELSE l.token + 1 END,
  acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp()
                     THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
  holder = EXCLUDED.holder,
  expires_at = EXCLUDED.expires_at
WHERE (l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp())
   OR l.expires_at <= clock_timestamp() - $4 * interval '1 millisecond'
RETURNING l.token`;

const RELEASE = `
UPDATE cluster_leases SET expires_at = clock_timestamp()
WHERE name = $1 AND holder = $2 AND expires_at > clock_timestamp()`;

export interface LeaseHolder {
  holder: string;
  token: number;
  /** Milliseconds until it expires; negative once expired. */
  expiresInMs: number;
}

/** The `cluster_leases` table: one row per lease name. */
export class PostgresLeaseTable {
  private readonly db: PostgresDatabase;

  constructor(url: string, options: { timeoutMs?: number } = {}) {
    const timeoutMs = options.timeoutMs ?? 5_000;
    // No store name: errors reach the lease loop as pg raised them, and it only logs them.
    this.db = new PostgresDatabase(url, {
      poolSize: 2,
      connectTimeoutMs: timeoutMs,
      // A claim that hangs past its renewal interval is as good as failed.
      queryTimeoutMs: timeoutMs,
      applicationName: 'outpost-ingest-leases',
    });
  }

  async migrate(): Promise<void> {
    await this.db.transaction(async (tx) => {
      await advisoryTransactionLock(tx, LOCK_MIGRATE);
      await tx.query(SCHEMA);
    });
  }

  /** The lease's token when `holder` has it now (renewed or taken over), else null. */
  async claim(
    name: string,
    holder: string,
    ttlMs: number,
    takeOverAfterMs = 0,
  ): Promise<number | null> {
    const rows = await this.db.query<{ token: number }>(CLAIM, [
      name,
      holder,
      ttlMs,
      takeOverAfterMs,
    ]);
    return rows[0]?.token ?? null;
  }

  /** Ends `holder`'s lease now; nothing if it is not the holder. */
  async release(name: string, holder: string): Promise<void> {
    await this.db.query(RELEASE, [name, holder]);
  }

  async holderOf(name: string): Promise<LeaseHolder | null> {
    const rows = await this.db.query<{
      holder: string;
      token: number;
      expires_in_ms: number;
    }>(
      `SELECT holder, token,
              (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint AS expires_in_ms
       FROM cluster_leases WHERE name = $1`,
      [name],
    );
    const row = rows[0];
    return row ? { holder: row.holder, token: row.token, expiresInMs: row.expires_in_ms } : null;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/** What a lease needs of the table (the unit tests pass a fake). */
export type LeaseClaims = Pick<PostgresLeaseTable, 'claim' | 'release'>;

export interface PostgresLeaseOptions extends LeaseOptions {
  table: LeaseClaims;
  name: string;
  holder: string;
  /** How long a claim is good for on the server. */
  ttlMs: number;
  /** Renewal (and, while not held, retry) interval; a third of the TTL by default. */
  renewMs?: number;
  /** Monotonic milliseconds; `performance.now` by default. */
  clock?: Clock;
  timers?: LeaseTimers;
  logger: Logger;
  /** Called once when stopped or abandoned. */
  onStopped?: () => void;
}

/**
 * One lease on the table: tries to claim it every `renewMs`; held from a successful claim
 * until the claim's send time plus the TTL less a margin. A failed or refused renewal before
 * that deadline keeps the lease (the server still counts it as ours); at the deadline it is
 * lost, `onChange(false)` fires, and claiming goes on.
 */
export class PostgresLease implements Lease {
  readonly name: string;
  private readonly table: LeaseClaims;
  private readonly holder: string;
  private readonly ttlMs: number;
  private readonly renewMs: number;
  private readonly marginMs: number;
  private readonly takeOverAfterMs: number;
  private readonly clock: Clock;
  private readonly timers: LeaseTimers;
  private readonly log: Logger;
  private readonly signals: LeaseSignals;
  private current: number | null = null;
  private heldUntil = Number.NEGATIVE_INFINITY;
  private started = false;
  private stopped = false;
  private next: unknown;
  private expiry: unknown;
  private inFlight: Promise<void> | undefined;
  private failing = false;
  private readonly onStopped: (() => void) | undefined;

  constructor(options: PostgresLeaseOptions) {
    this.onStopped = options.onStopped;
    this.name = options.name;
    this.table = options.table;
    this.holder = options.holder;
    this.ttlMs = options.ttlMs;
    this.renewMs = options.renewMs ?? Math.max(1, Math.floor(options.ttlMs / 3));
    this.marginMs = Math.min(Math.floor(options.ttlMs / 5), 2_000);
    this.takeOverAfterMs = options.takeOverAfterMs ?? 0;
    this.clock = options.clock ?? monotonicClock;
    this.timers = options.timers ?? systemLeaseTimers;
    this.log = options.logger.child({ lease: options.name });
    this.signals = new LeaseSignals(options.name, (err) =>
      this.log.error({ err }, 'lease listener failed'),
    );
  }

  isHeld(): boolean {
    if (this.current === null) return false;
    if (this.clock.now() < this.heldUntil) return true;
    this.lose('not renewed in time');
    return false;
  }

  token(): number | null {
    return this.isHeld() ? this.current : null;
  }

  async tryAcquire(): Promise<boolean> {
    if (this.stopped) return false;
    if (this.started) return this.isHeld();
    await this.claim();
    return this.isHeld();
  }

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.attempt();
  }

  acquired(): Promise<void> {
    return this.signals.acquired(this.isHeld(), this.stopped);
  }

  onChange(listener: (held: boolean) => void): () => void {
    return this.signals.onChange(listener);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.abandon();
    await this.inFlight;
    if (this.current === null) return;
    this.current = null;
    this.signals.lost();
    try {
      await this.table.release(this.name, this.holder);
    } catch (err) {
      // It expires on its own after the TTL.
      this.log.warn({ err }, 'could not release lease');
    }
  }

  /** Stops claiming without releasing, as a crashed process would: it expires after the TTL. */
  abandon(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.clearTimeout(this.next);
    this.timers.clearTimeout(this.expiry);
    this.signals.stopped();
    this.onStopped?.();
  }

  private attempt(): void {
    if (this.stopped) return;
    this.inFlight = this.claim().finally(() => {
      this.inFlight = undefined;
      if (!this.stopped) this.next = this.timers.setTimeout(() => this.attempt(), this.renewMs);
    });
  }

  private async claim(): Promise<void> {
    const sentAt = this.clock.now();
    let token: number | null;
    try {
      token = await this.table.claim(this.name, this.holder, this.ttlMs, this.takeOverAfterMs);
    } catch (err) {
      if (!this.failing) this.log.warn({ err }, 'lease claim failed; retrying');
      this.failing = true;
      this.isHeld();
      return;
    }
    if (this.failing) this.log.info('lease claims work again');
    this.failing = false;
    if (this.stopped) {
      // Stopped while claiming: `stop` releases if this made us the holder.
      if (token !== null) this.current = token;
      return;
    }
    if (token === null) {
      if (this.current !== null) this.lose('taken over');
      return;
    }
    // A new token while we thought we held it: it lapsed in between and was taken afresh.
    if (this.current !== null && this.current !== token) this.lose('lapsed');
    const fresh = this.current === null;
    this.current = token;
    this.heldUntil = sentAt + this.ttlMs - this.marginMs;
    this.timers.clearTimeout(this.expiry);
    this.expiry = this.timers.setTimeout(
      () => this.isHeld(),
      Math.max(0, this.heldUntil - this.clock.now()),
    );
    if (fresh) {
      this.log.info({ token }, 'lease acquired');
      this.signals.gained();
    }
  }

  private lose(why: string): void {
    if (this.current === null) return;
    this.current = null;
    this.heldUntil = Number.NEGATIVE_INFINITY;
    this.log.warn({ why }, 'lease lost');
    this.signals.lost();
  }
}

export interface PostgresLeasesOptions {
  url: string;
  /** Unique per process run: a restarted replica is a new holder and waits for the old lease. */
  holder: string;
  ttlMs: number;
  logger: Logger;
  clock?: Clock;
  timers?: LeaseTimers;
}

/** The leases of one replica on the shared database. */
export class PostgresLeases implements Leases {
  readonly shared = true;
  readonly holder: string;
  readonly table: PostgresLeaseTable;
  private readonly made = new Set<PostgresLease>();
  private readonly options: PostgresLeasesOptions;

  constructor(options: PostgresLeasesOptions) {
    this.options = options;
    this.holder = options.holder;
    this.table = new PostgresLeaseTable(options.url, {
      timeoutMs: Math.max(500, Math.floor(options.ttlMs / 3)),
    });
  }

  migrate(): Promise<void> {
    return this.table.migrate();
  }

  lease(name: string, options: LeaseOptions = {}): PostgresLease {
    const lease: PostgresLease = new PostgresLease({
      ...options,
      onStopped: () => this.made.delete(lease),
      table: this.table,
      name,
      holder: this.holder,
      ttlMs: this.options.ttlMs,
      logger: this.options.logger,
      ...(this.options.clock ? { clock: this.options.clock } : {}),
      ...(this.options.timers ? { timers: this.options.timers } : {}),
    });
    this.made.add(lease);
    return lease;
  }

  /** Stops and releases every lease made here, then closes the connections. */
  async close(): Promise<void> {
    await Promise.all([...this.made].map((lease) => lease.stop()));
    this.made.clear();
    await this.table.close();
  }

  /**
   * Stops renewing every lease without releasing any and closes the connections: what a
   * crash leaves behind. Other replicas take over once the leases expire.
   */
  async abandon(): Promise<void> {
    for (const lease of [...this.made]) lease.abandon();
    await this.table.close();
  }
}
