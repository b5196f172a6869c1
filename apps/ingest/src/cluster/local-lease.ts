import { type Lease, LeaseSignals, type Leases } from './lease.js';

/**
 * One process on SQLite: nothing else can hold a lease, so it is held from `start` until
 * `stop`. The fencing token never changes.
 */
export class LocalLease implements Lease {
  private held = false;
  private stopped = false;
  private readonly signals: LeaseSignals;

  constructor(readonly name: string) {
    // Nothing to log with here: a failing listener fails the caller, as any event would.
    this.signals = new LeaseSignals(name, (err) => {
      throw err;
    });
  }

  isHeld(): boolean {
    return this.held;
  }

  token(): number | null {
    return this.held ? 1 : null;
  }

  async tryAcquire(): Promise<boolean> {
    this.start();
    return this.held;
  }

  start(): void {
    if (this.held || this.stopped) return;
    this.held = true;
    this.signals.gained();
  }

  acquired(): Promise<void> {
    return this.signals.acquired(this.held, this.stopped);
  }

  onChange(listener: (held: boolean) => void): () => void {
    return this.signals.onChange(listener);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.signals.stopped();
    if (!this.held) return;
    this.held = false;
    this.signals.lost();
  }
}

export class LocalLeases implements Leases {
  readonly shared = false;
  private readonly made = new Set<LocalLease>();

  constructor(readonly holder = 'local') {}

  lease(name: string): Lease {
    const lease = new LocalLease(name);
    this.made.add(lease);
    return lease;
  }

  async close(): Promise<void> {
    for (const lease of this.made) await lease.stop();
    this.made.clear();
  }
}
