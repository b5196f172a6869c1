import { type Lease, LeaseStopped, type Leases } from './lease.js';

/**
 * One process on SQLite: nothing else can hold a lease, so it is held from `start` until
 * `stop`. The fencing token never changes.
 */
export class LocalLease implements Lease {
  private held = false;
  private stopped = false;
  private readonly listeners = new Set<(held: boolean) => void>();
  private readonly waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];

  constructor(readonly name: string) {}

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
    for (const w of this.waiters.splice(0)) w.resolve();
    this.emit(true);
  }

  acquired(): Promise<void> {
    if (this.held) return Promise.resolve();
    if (this.stopped) return Promise.reject(new LeaseStopped(this.name));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  onChange(listener: (held: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of this.waiters.splice(0)) w.reject(new LeaseStopped(this.name));
    if (!this.held) return;
    this.held = false;
    this.emit(false);
  }

  private emit(held: boolean): void {
    for (const listener of this.listeners) listener(held);
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
