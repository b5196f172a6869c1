import { describe, expect, it } from 'vitest';
import { readingLine, seriesText } from './telemetry.js';

describe('telemetry output', () => {
  it('prints a series as a table, or says there is nothing', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    const text = seriesText(
      {
        device: 'd',
        metric: 't',
        from: 'a',
        to: 'b',
        every: '1m',
        fn: 'mean',
        points: [
          { time: '2026-01-01T11:59:00.000Z', value: 21.5 },
          { time: '2026-01-01T12:00:00.000Z', value: null },
        ],
      },
      now,
    );
    expect(text).toContain('MEAN PER 1M');
    expect(text).toContain('21.5');
    expect(
      seriesText(
        { device: 'd', metric: 't', from: 'a', to: 'b', every: null, fn: null, points: [] },
        now,
      ),
    ).toBe('no readings of t between a and b');
  });

  it('prints one line per live reading, marking backfilled ones', () => {
    expect(
      readingLine({ device: 'd', metric: 't', time: 'T', value: 1, unit: 'Cel', backfilled: true }),
    ).toBe('T  d  t=1 Cel  (backfilled)');
  });
});
