import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { Leases } from './lease.js';
import type { LeaseClaims } from './postgres-lease.js';

export interface LeaseContractSetup {
  /** The leases of one more replica on the same backend. */
  replica(): Promise<Leases>;
  close(): Promise<void>;
}

/**
 * The `cluster_leases` table's claim and release in memory, on the clock given, for tests of
 * what sits on PostgresLease. `failing` makes every claim fail as an unreachable database
 * would; `claims` counts them.
 */
export class MemoryLeaseClaims implements LeaseClaims {
  readonly rows = new Map<string, { holder: string; token: number; expiresAt: number }>();
  failing = false;
  claims = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async claim(name: string, holder: string, ttlMs: number, takeOverAfterMs = 0) {
    this.claims++;
    if (this.failing) throw new Error('connection refused');
    const now = this.now();
    const row = this.rows.get(name);
    if (!row) {
      this.rows.set(name, { holder, token: 1, expiresAt: now + ttlMs });
      return 1;
    }
    if (row.holder === holder && row.expiresAt > now) {
      row.expiresAt = now + ttlMs;
      return row.token;
    }
    if (row.expiresAt <= now - takeOverAfterMs) {
      Object.assign(row, { holder, token: row.token + 1, expiresAt: now + ttlMs });
      return row.token;
    }
    return null;
  }

  async release(name: string, holder: string) {
    const row = this.rows.get(name);
    const now = this.now();
    if (row?.holder === holder && row.expiresAt > now) row.expiresAt = now;
  }
}

const unique = (what: string) => `contract.${what}.${randomUUID().slice(0, 8)}`;

async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * What every Lease implementation does. Mutual exclusion is checked where replicas can
 * share a lease (`Leases.shared`); a lone process holds every lease it starts.
 */
export function leaseContract(name: string, open: () => Promise<LeaseContractSetup>): void {
  describe(`Lease contract: ${name}`, () => {
    let setup: LeaseContractSetup | undefined;
    const replica = async () => {
      setup ??= await open();
      return setup.replica();
    };
    afterAll(async () => {
      await setup?.close();
    });

    it('is not held before start, held after it, with a token and one change event', async () => {
      const leases = await replica();
      const lease = leases.lease(unique('start'));
      const changes: boolean[] = [];
      lease.onChange((held) => changes.push(held));
      expect(lease.isHeld()).toBe(false);
      expect(lease.token()).toBeNull();
      lease.start();
      await lease.acquired();
      expect(lease.isHeld()).toBe(true);
      expect(lease.token()).toEqual(expect.any(Number));
      expect(changes).toEqual([true]);
      await lease.stop();
    });

    it('stop releases: not held, a change event, and acquired() of a stopped lease rejects', async () => {
      const leases = await replica();
      const lease = leases.lease(unique('stop'));
      const changes: boolean[] = [];
      lease.onChange((held) => changes.push(held));
      lease.start();
      await lease.acquired();
      await lease.stop();
      await lease.stop();
      expect(lease.isHeld()).toBe(false);
      expect(changes).toEqual([true, false]);
      await expect(lease.acquired()).rejects.toMatchObject({ code: 'lease_stopped' });
      expect(await lease.tryAcquire()).toBe(false);
    });

    it('tryAcquire takes a free lease once, without renewing it in the background', async () => {
      const leases = await replica();
      const lease = leases.lease(unique('try'));
      expect(await lease.tryAcquire()).toBe(true);
      expect(lease.isHeld()).toBe(true);
      await lease.stop();
    });

    it('two replicas: exactly one holds a name; the other takes it once it is released', async () => {
      const a = await replica();
      const b = await replica();
      if (!a.shared) return;
      expect(a.holder).not.toBe(b.holder);
      const name = unique('exclusive');
      const first = a.lease(name);
      const second = b.lease(name);
      first.start();
      await first.acquired();
      second.start();
      expect(await second.tryAcquire()).toBe(false);
      expect(second.isHeld()).toBe(false);
      const tokenBefore = first.token()!;
      await first.stop();
      await second.acquired();
      expect(second.isHeld()).toBe(true);
      expect(second.token()!).toBeGreaterThan(tokenBefore);
      await second.stop();
    });

    it('takeOverAfterMs: a released lease is not taken before the grace period', async () => {
      const a = await replica();
      const b = await replica();
      if (!a.shared) return;
      const name = unique('grace');
      const owner = a.lease(name);
      expect(await owner.tryAcquire()).toBe(true);
      await owner.stop();
      const adopter = b.lease(name, { takeOverAfterMs: 60_000 });
      expect(await adopter.tryAcquire()).toBe(false);
      const eager = b.lease(name, { takeOverAfterMs: 0 });
      expect(await eager.tryAcquire()).toBe(true);
      await Promise.all([adopter.stop(), eager.stop()]);
    });

    it('of many replicas starting at once, one holds at any moment', async () => {
      const all = await Promise.all([replica(), replica(), replica()]);
      const name = unique('race');
      const leases = all.map((l) => l.lease(name));
      for (const l of leases) l.start();
      await eventually(() => leases.some((l) => l.isHeld()), 'a holder');
      const held = leases.filter((l) => l.isHeld()).length;
      expect(held).toBe(all[0]!.shared ? 1 : leases.length);
      await Promise.all(leases.map((l) => l.stop()));
    });
  });
}
