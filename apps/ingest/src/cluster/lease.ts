import { AppError } from '@outpost/protocol/errors';

/**
 * A lease: the right of one replica at a time to do a piece of work that must not run twice
 * at once (advance rollouts, fire alert timers, drain a replica's outbox). Two
 * implementations: `postgres-lease.ts` for replicas sharing a PostgreSQL database and
 * `local-lease.ts` for the single process on SQLite, where the one process always holds it.
 */
export interface Lease {
  readonly name: string;
  /** True while this replica may do the work; false once the lease may be someone else's. */
  isHeld(): boolean;
  /**
   * Increases with every new holder (fencing token); null when not held. A store that
   * compares it on write refuses a holder that lost the lease without noticing.
   */
  token(): number | null;
  /**
   * One claim now, without starting the loop: true when held afterwards. An adopter tries
   * once per scan and starts renewing only what it got.
   */
  tryAcquire(): Promise<boolean>;
  /** Starts acquiring, then renewing; idempotent. */
  start(): void;
  /** Resolves once held; rejects with `LeaseStopped` if stopped first. */
  acquired(): Promise<void>;
  /** Called with `true` on acquisition and `false` on loss or release. Returns an unsubscribe. */
  onChange(listener: (held: boolean) => void): () => void;
  /** Stops renewing and releases the lease if held, so another replica takes it at once. */
  stop(): Promise<void>;
}

export interface LeaseOptions {
  /**
   * Take the lease only when its last holder let it expire at least this long ago: an
   * adopter waits out a grace period in which the holder may still come back.
   */
  takeOverAfterMs?: number;
}

/** Makes the leases of one replica; `close` stops and releases every lease it made. */
export interface Leases {
  /** This replica's holder name (unique per process run). */
  readonly holder: string;
  /** Whether other replicas may hold the same names (false: one process, always held). */
  readonly shared: boolean;
  lease(name: string, options?: LeaseOptions): Lease;
  close(): Promise<void>;
}

/** The timer functions a lease schedules its attempts with; injected so tests step them. */
export interface LeaseTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemLeaseTimers: LeaseTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Elapsed time for lease deadlines: monotonic, so a wall clock stepped by NTP (or a test
 * clock moved hours ahead for a soak time) neither shortens nor stretches a lease.
 */
export const monotonicClock = { now: () => performance.now() };

/**
 * The waiting and listening side of a lease, the same for every kind: the callers waiting in
 * `acquired()` and the `onChange` listeners. A listener that throws is handed to
 * `onListenerError` and the others are still told.
 */
export class LeaseSignals {
  private readonly listeners = new Set<(held: boolean) => void>();
  private readonly waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(
    private readonly name: string,
    private readonly onListenerError: (err: unknown) => void,
  ) {}

  /** `Lease.acquired` for a lease that is (or is not) held, or stopped. */
  acquired(held: boolean, stopped: boolean): Promise<void> {
    if (held) return Promise.resolve();
    if (stopped) return Promise.reject(new LeaseStopped(this.name));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** `Lease.onChange`. */
  onChange(listener: (held: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The lease was acquired: waiters resolve, then listeners hear `true`. */
  gained(): void {
    for (const w of this.waiters.splice(0)) w.resolve();
    this.emit(true);
  }

  /** The lease was lost or released: listeners hear `false`. */
  lost(): void {
    this.emit(false);
  }

  /** The lease stopped: whoever still waits for it is refused with `LeaseStopped`. */
  stopped(): void {
    for (const w of this.waiters.splice(0)) w.reject(new LeaseStopped(this.name));
  }

  private emit(held: boolean): void {
    for (const listener of this.listeners) {
      try {
        listener(held);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }
}

/** `acquired()` of a lease stopped before it was held. */
export class LeaseStopped extends AppError {
  constructor(name: string) {
    super('unavailable', 'lease_stopped', `lease ${name} stopped before it was acquired`);
  }
}

export const LEASES = Symbol('LEASES');

/** The lease names, one per piece of work. */
export const LEASE_NAMES = {
  otaRollouts: 'ota.rollouts',
  alertTimers: 'alerts.timers',
  /** Ownership of the durable telemetry outbox of `replicaId`. */
  outbox: (replicaId: string) => `outbox:${replicaId}`,
} as const;
