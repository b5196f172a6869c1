import { describe, expect, it } from 'vitest';
import {
  acknowledgeable,
  alertFiltersFromSearch,
  alertQuery,
  alertSearch,
  DEFAULT_ALERT_FILTERS,
} from './alert-filters.js';

describe('alert filters', () => {
  it('defaults to open alerts and round-trips through the address', () => {
    expect(alertFiltersFromSearch('')).toEqual(DEFAULT_ALERT_FILTERS);
    const f = {
      state: 'firing' as const,
      severity: 'critical',
      device: 'th-1',
      acknowledged: 'false' as const,
    };
    expect(alertFiltersFromSearch(alertSearch(f))).toEqual(f);
    expect(alertSearch(DEFAULT_ALERT_FILTERS)).toBe('');
    expect(alertFiltersFromSearch('?state=bogus&severity=meh')).toEqual(DEFAULT_ALERT_FILTERS);
  });

  it('asks for every state when told "all"', () => {
    expect(alertQuery({ ...DEFAULT_ALERT_FILTERS, state: 'all' }, null).state).toBeUndefined();
    expect(alertQuery(DEFAULT_ALERT_FILTERS, 'cur').after).toBe('cur');
  });

  it('offers acknowledgement for open alerts not yet acknowledged', () => {
    expect(acknowledgeable({ state: 'firing', acknowledgedAt: null })).toBe(true);
    expect(acknowledgeable({ state: 'pending', acknowledgedAt: null })).toBe(true);
    expect(acknowledgeable({ state: 'firing', acknowledgedAt: '2026-01-01T00:00:00Z' })).toBe(
      false,
    );
    expect(acknowledgeable({ state: 'resolved', acknowledgedAt: null })).toBe(false);
  });
});
