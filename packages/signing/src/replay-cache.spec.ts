import { describe, expect, it } from 'vitest';
import { MemoryReplayCache } from './replay-cache.js';

function clock(start: number) {
  let t = start;
  return {
    now: () => t,
    advance: (seconds: number) => {
      t += seconds;
    },
  };
}

describe('MemoryReplayCache', () => {
  it('accepts an id once until it expires, then again', () => {
    const time = clock(1000);
    const cache = new MemoryReplayCache({ now: time.now });
    expect(cache.checkAndRemember('a', 1010)).toBe(true);
    expect(cache.checkAndRemember('a', 1010)).toBe(false);
    expect(cache.checkAndRemember('b', 1010)).toBe(true);
    time.advance(10);
    expect(cache.checkAndRemember('a', 1100)).toBe(true);
    expect(cache.checkAndRemember('a', 1100)).toBe(false);
  });

  it('stays bounded: sweeps expired ids, then forgets the oldest', () => {
    const time = clock(1000);
    const cache = new MemoryReplayCache({ maxEntries: 3, now: time.now });
    cache.checkAndRemember('short-1', 1005);
    cache.checkAndRemember('long-1', 2000);
    cache.checkAndRemember('short-2', 1005);
    time.advance(10);
    // Full: the sweep removes both expired ids.
    expect(cache.checkAndRemember('long-2', 2000)).toBe(true);
    expect(cache.size).toBe(2);
    cache.checkAndRemember('long-3', 2000);
    // Full of live ids: the oldest one goes.
    expect(cache.checkAndRemember('long-4', 2000)).toBe(true);
    expect(cache.size).toBe(3);
    expect(cache.checkAndRemember('long-2', 2000)).toBe(false);
    expect(cache.checkAndRemember('long-1', 2000)).toBe(true);
  });

  it('holds a flood of fresh ids within its bound', () => {
    const time = clock(1000);
    const cache = new MemoryReplayCache({ maxEntries: 100, now: time.now });
    for (let i = 0; i < 10_000; i++) cache.checkAndRemember(`id-${i}`, 5000);
    expect(cache.size).toBe(100);
    expect(cache.checkAndRemember('id-9999', 5000)).toBe(false);
  });
});
