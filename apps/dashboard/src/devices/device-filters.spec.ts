import { describe, expect, it } from 'vitest';
import {
  filtersFromSearch,
  listQuery,
  NO_FILTERS,
  parseTags,
  searchFromFilters,
} from './device-filters.js';

describe('device filters', () => {
  it('parses tags typed with commas or spaces, and names the bad ones', () => {
    expect(parseTags('site=north, room=boiler  floor=2')).toEqual({
      pairs: ['site=north', 'room=boiler', 'floor=2'],
      invalid: [],
    });
    expect(parseTags('site north=1 =x')).toEqual({ pairs: ['north=1'], invalid: ['site', '=x'] });
  });

  it('round-trips through the address', () => {
    const f = {
      q: 'boiler',
      status: 'buffering' as const,
      tags: 'site=north, room=b',
      gateway: 'gw-1',
      limit: 500,
    };
    const search = searchFromFilters(f);
    expect(search).toBe(
      '?q=boiler&status=buffering&tag=site%3Dnorth&tag=room%3Db&gateway=gw-1&limit=500',
    );
    expect(filtersFromSearch(search)).toEqual({ ...f, tags: 'site=north, room=b' });
    expect(searchFromFilters(NO_FILTERS)).toBe('');
  });

  it('ignores unknown statuses and page sizes from the address', () => {
    expect(filtersFromSearch('?status=exploded&limit=7')).toEqual(NO_FILTERS);
  });

  it('builds the list API query for a page', () => {
    expect(listQuery({ ...NO_FILTERS, q: '  th ', tags: 'a=1 b' }, 'dev-9')).toEqual({
      q: 'th',
      status: undefined,
      tag: ['a=1'],
      gateway: undefined,
      limit: 100,
      after: 'dev-9',
    });
  });
});
