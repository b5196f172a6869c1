import { describe, expect, it } from 'vitest';
import {
  formatAgo,
  formatBytes,
  formatCount,
  formatDuration,
  formatTime,
  formatValue,
} from './format.js';

describe('formatting', () => {
  it.each([
    [0, '0s'],
    [0.25, '250ms'],
    [59, '59s'],
    [95, '1m 35s'],
    [3600, '1h'],
    [3661, '1h 1m'],
    [90_061, '1d 1h'],
    [-1, '–'],
    [Number.NaN, '–'],
  ])('duration %s s → %s', (s, text) => {
    expect(formatDuration(s)).toBe(text);
  });

  it('says how long ago', () => {
    const now = Date.parse('2026-01-01T00:10:00Z');
    expect(formatAgo(null, now)).toBe('never');
    expect(formatAgo('2026-01-01T00:09:58Z', now)).toBe('just now');
    expect(formatAgo('2026-01-01T00:08:30Z', now)).toBe('1m 30s ago');
    expect(formatAgo('garbage', now)).toBe('–');
    // A clock ahead of ours is not "in the future".
    expect(formatAgo('2026-01-01T00:11:00Z', now)).toBe('just now');
  });

  it('formats sizes, counts, values and times', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(512 * 1024 * 1024)).toBe('512 MiB');
    expect(formatCount(1_234_567)).toBe('1,234,567');
    expect(formatValue(21.456789)).toBe('21.46');
    expect(formatValue(1234.56)).toBe('1234.6');
    expect(formatValue(0.000123456)).toBe('0.0001');
    expect(formatValue(42)).toBe('42');
    expect(formatValue(true)).toBe('true');
    expect(formatValue(null)).toBe('–');
    expect(formatTime('2026-05-04T13:02:11.123Z')).toBe('2026-05-04 13:02:11Z');
    expect(formatTime(null)).toBe('–');
  });
});
