import { describe, expect, it } from 'vitest';
import { contentRange, ifRangeHolds, parseRange } from './byte-range.js';

describe('parseRange', () => {
  it.each([
    { header: undefined, decision: { kind: 'full' } },
    { header: 'bytes=0-99', decision: { kind: 'partial', start: 0, end: 99 } },
    { header: 'bytes=100-', decision: { kind: 'partial', start: 100, end: 999 } },
    { header: 'bytes=900-5000', decision: { kind: 'partial', start: 900, end: 999 } },
    { header: 'bytes=-100', decision: { kind: 'partial', start: 900, end: 999 } },
    { header: 'bytes=-5000', decision: { kind: 'partial', start: 0, end: 999 } },
    { header: 'Bytes = 5-5', decision: { kind: 'partial', start: 5, end: 5 } },
    { header: 'bytes=999-', decision: { kind: 'partial', start: 999, end: 999 } },
    { header: 'bytes=1000-', decision: { kind: 'unsatisfiable' } },
    { header: 'bytes=1000-2000', decision: { kind: 'unsatisfiable' } },
    { header: 'bytes=-0', decision: { kind: 'unsatisfiable' } },
    // Ignored: answered in full.
    { header: 'bytes=0-1,5-9', decision: { kind: 'full' } },
    { header: 'bytes=9-1', decision: { kind: 'full' } },
    { header: 'bytes=abc', decision: { kind: 'full' } },
    { header: 'bytes=-', decision: { kind: 'full' } },
    { header: 'bytes=1e3-', decision: { kind: 'full' } },
    { header: 'items=0-1', decision: { kind: 'full' } },
    { header: 'bytes=99999999999999999-', decision: { kind: 'full' } },
  ])('$header of 1000 bytes', ({ header, decision }) => {
    expect(parseRange(header, 1000)).toEqual(decision);
  });
});

describe('ifRangeHolds and contentRange', () => {
  it('applies a range only to the representation the client names', () => {
    expect(ifRangeHolds(undefined, '"abc"')).toBe(true);
    expect(ifRangeHolds('"abc"', '"abc"')).toBe(true);
    expect(ifRangeHolds('"old"', '"abc"')).toBe(false);
    expect(ifRangeHolds('Wed, 21 Oct 2015 07:28:00 GMT', '"abc"')).toBe(false);
  });

  it('spells Content-Range as RFC 9110 §14.4 does', () => {
    expect(contentRange({ kind: 'partial', start: 10, end: 19 }, 100)).toBe('bytes 10-19/100');
    expect(contentRange({ kind: 'unsatisfiable' }, 100)).toBe('bytes */100');
    expect(contentRange({ kind: 'full' }, 100)).toBeUndefined();
  });
});
