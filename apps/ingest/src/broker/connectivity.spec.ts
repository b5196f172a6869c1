import { describe, expect, it } from 'vitest';
import { ConnectivityTracker, staleAtStart, WindowCounter } from './connectivity.js';

describe('ConnectivityTracker', () => {
  it('batches updates: one per device, last seen is the latest activity', () => {
    const t = new ConnectivityTracker('r1');
    t.connected('a', 1000);
    t.seen('a', 1500);
    t.seen('a', 1200);
    t.connected('b', 1000);
    t.disconnected('b', 'keepalive', 1800);
    expect(t.take()).toEqual([
      { deviceId: 'a', online: true, lastSeen: 1500, disconnectReason: null, replica: 'r1' },
      {
        deviceId: 'b',
        online: false,
        lastSeen: 1800,
        disconnectReason: 'keepalive',
        replica: null,
      },
    ]);
    expect(t.take()).toEqual([]);
    t.seen('a', 2000);
    t.seen('b', 2000);
    expect(t.take()).toEqual([
      { deviceId: 'a', online: true, lastSeen: 2000, disconnectReason: null, replica: 'r1' },
    ]);
    expect(t.onlineCount).toBe(1);
  });

  it('drops unwritten updates older than the device connecting to another replica', () => {
    const t = new ConnectivityTracker('r1');
    t.connected('a', 1000);
    t.disconnected('a', 'connection_lost', 2000);
    t.movedAway('a', 2100);
    expect(t.take()).toEqual([]);
    // A disconnect after the other replica's connect is news: kept.
    t.connected('b', 1000);
    t.disconnected('b', 'connection_lost', 3000);
    t.movedAway('b', 2500);
    // An older online update too; and the device is no longer online here.
    t.connected('c', 1000);
    t.movedAway('c', 2000);
    expect(t.isOnline('c')).toBe(false);
    t.seen('c', 2500);
    expect(t.take().map((u) => [u.deviceId, u.online])).toEqual([['b', false]]);
  });
});

describe('staleAtStart', () => {
  it('alone, every online device; with a shared registry, only those of this replica id', () => {
    expect(staleAtStart(false, 'r1')).toBeNull();
    expect(staleAtStart(true, 'r1')).toBe('r1');
  });
});

describe('WindowCounter', () => {
  it('counts within the window only', () => {
    const c = new WindowCounter(60_000);
    expect(c.add('x', 0)).toBe(1);
    expect(c.add('x', 30_000)).toBe(2);
    expect(c.add('x', 60_001)).toBe(2);
    expect(c.count('x', 200_000)).toBe(0);
  });
});
