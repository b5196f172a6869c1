import { describe, expect, it } from 'vitest';
import { durationSchema, formatDuration, parseDuration, parseInstant } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['7d', 604_800_000],
    ['1.5s', 1500],
    ['45', 45_000],
    ['1h30m', 5_400_000],
    ['1w', 604_800_000],
  ])('%s = %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '-1s', '1y', 's', '1 s', '1e9s', 'm10'])('refuses %j', (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );

  it('parses numbers of seconds and strings in a schema', () => {
    expect(durationSchema.parse(2)).toBe(2000);
    expect(durationSchema.parse('2m')).toBe(120_000);
    expect(durationSchema.safeParse('soon').success).toBe(false);
  });
});

describe('parseInstant', () => {
  const now = Date.UTC(2026, 0, 1, 12);
  it('reads now, relative, ISO and epoch ms', () => {
    expect(parseInstant('now', now)).toBe(now);
    expect(parseInstant('-1h', now)).toBe(now - 3_600_000);
    expect(parseInstant('2026-01-01T00:00:00Z', now)).toBe(Date.UTC(2026, 0, 1));
    expect(parseInstant('1767225600000', now)).toBe(1_767_225_600_000);
    expect(parseInstant('yesterday', now)).toBeUndefined();
    expect(parseInstant('-1x', now)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it('writes whole units, largest first', () => {
    expect(formatDuration(90_061_000)).toBe('1d1h1m1s');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(250)).toBe('250ms');
  });
});
