import { describe, expect, it } from 'vitest';
import { formatDuration, parseDurationSeconds } from './duration.js';

describe('parseDurationSeconds', () => {
  it.each([
    ['90s', 90],
    ['30m', 1800],
    ['24h', 86_400],
    ['7d', 604_800],
    ['2w', 1_209_600],
    ['1h30m', 5400],
    ['1d12h', 129_600],
    [' 15m ', 900],
  ])('reads %s as %i s', (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });

  it.each([
    '',
    'h',
    '1.5s5',
    '-1h',
    '10 m',
    '1y',
    '1H',
    '1h 30m',
    '1e3s',
    `${'9'.repeat(400)}s`,
    '0.5s',
  ])('refuses %j', (text) => {
    expect(parseDurationSeconds(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it('writes the largest units first and leaves out zeros', () => {
    expect(formatDuration(90_061)).toBe('1d1h1m1s');
    expect(formatDuration(86_400)).toBe('1d');
    expect(formatDuration(3599)).toBe('59m59s');
    expect(formatDuration(0)).toBe('0s');
  });

  it('round-trips through the parser', () => {
    for (const s of [1, 59, 60, 3601, 86_399, 2_592_000]) {
      expect(parseDurationSeconds(formatDuration(s))).toBe(s);
    }
  });
});
