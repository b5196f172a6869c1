import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MemoryLeaseClaims } from './lease.contract.js';
import type { LeaseTimers } from './lease.js';
import { PostgresLease } from './postgres-lease.js';

// Real: PostgresLease's claim loop. Fake: the table (an in-memory model of CLAIM/RELEASE on
// the same clock, whose claims can be made to fail), the clock and the timers, stepped by hand.

class ManualTime implements LeaseTimers {
  ms = 0;
  private seq = 0;
  private pending = new Map<number, { at: number; fn: () => void }>();
  now = () => this.ms;
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.ms + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Moves time, running each timer due on the way (and the claims it starts). */
  async advance(ms: number): Promise<void> {
    const until = this.ms + ms;
    for (;;) {
      await settle();
      const next = [...this.pending.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.pending.delete(next[0]);
      this.ms = Math.max(this.ms, next[1].at);
      next[1].fn();
    }
    this.ms = until;
    await settle();
  }
}

const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

function setup(holder = 'a', table?: MemoryLeaseClaims, time = new ManualTime()) {
  const t = table ?? new MemoryLeaseClaims(() => time.ms);
  const lease = new PostgresLease({
    table: t,
    name: 'ota.rollouts',
    holder,
    ttlMs: 3_000,
    renewMs: 1_000,
    clock: time,
    timers: time,
    logger: pino({ level: 'silent' }),
  });
  const changes: boolean[] = [];
  lease.onChange((held) => changes.push(held));
  return { lease, table: t, time, changes };
}

describe('PostgresLease', () => {
  it('acquires on start and renews every renewMs, holding throughout', async () => {
    const { lease, table, time, changes } = setup();
    lease.start();
    await time.advance(0);
    expect(lease.isHeld()).toBe(true);
    expect(lease.token()).toBe(1);
    await time.advance(10_000);
    expect(lease.isHeld()).toBe(true);
    expect(table.claims).toBe(11);
    expect(changes).toEqual([true]);
  });

  it('keeps the lease through failed renewals until its deadline, then reports it lost', async () => {
    const { lease, table, time, changes } = setup();
    lease.start();
    await time.advance(0);
    table.failing = true;
    // Deadline: sent at 0, TTL 3000, margin 600.
    await time.advance(2_399);
    expect(lease.isHeld()).toBe(true);
    await time.advance(1);
    expect(lease.isHeld()).toBe(false);
    expect(changes).toEqual([true, false]);
    // The server agrees: nobody could take it before it expired there.
    expect(table.rows.get('ota.rollouts')!.expiresAt).toBe(3_000);
  });

  it('reacquires with a new token once claims work again after a loss', async () => {
    const { lease, table, time, changes } = setup();
    lease.start();
    await time.advance(0);
    table.failing = true;
    await time.advance(5_000);
    table.failing = false;
    await time.advance(1_000);
    expect(lease.isHeld()).toBe(true);
    expect(lease.token()).toBe(2);
    expect(changes).toEqual([true, false, true]);
  });

  it('a refused renewal (someone else holds it) is a loss at once', async () => {
    const { lease, table, time, changes } = setup();
    lease.start();
    await time.advance(0);
    table.rows.set('ota.rollouts', { holder: 'b', token: 7, expiresAt: 100_000 });
    await time.advance(1_000);
    expect(lease.isHeld()).toBe(false);
    expect(changes).toEqual([true, false]);
  });

  it('waits for another holder to lapse, then takes over; acquired() resolves then', async () => {
    const time = new ManualTime();
    const table = new MemoryLeaseClaims(() => time.ms);
    const a = setup('a', table, time);
    const b = setup('b', table, time);
    a.lease.start();
    await time.advance(0);
    b.lease.start();
    let acquired = false;
    void b.lease.acquired().then(() => {
      acquired = true;
    });
    await time.advance(5_000);
    expect(a.lease.isHeld()).toBe(true);
    expect(b.lease.isHeld()).toBe(false);
    a.lease.abandon();
    await time.advance(2_000);
    expect(b.lease.isHeld()).toBe(false);
    await time.advance(2_000);
    expect(b.lease.isHeld()).toBe(true);
    expect(b.lease.token()).toBe(2);
    expect(acquired).toBe(true);
    // The one that crashed never sees its lease as held past its own deadline.
    expect(a.lease.isHeld()).toBe(false);
  });

  it('stop releases so another replica takes it on its next claim', async () => {
    const time = new ManualTime();
    const table = new MemoryLeaseClaims(() => time.ms);
    const a = setup('a', table, time);
    const b = setup('b', table, time);
    a.lease.start();
    await time.advance(0);
    b.lease.start();
    await time.advance(0);
    await a.lease.stop();
    expect(a.changes).toEqual([true, false]);
    await time.advance(1_000);
    expect(b.lease.isHeld()).toBe(true);
  });

  it('tryAcquire claims once and schedules nothing', async () => {
    const { lease, table, time } = setup();
    expect(await lease.tryAcquire()).toBe(true);
    await time.advance(10_000);
    expect(table.claims).toBe(1);
    expect(lease.isHeld()).toBe(false);
  });
});
