import { describe, expect, it } from 'vitest';
import { quoteIdent } from './postgres.js';

describe('quoteIdent', () => {
  it('double-quotes a name and doubles embedded quotes', () => {
    expect(quoteIdent('outpost')).toBe('"outpost"');
    expect(quoteIdent('a "b" c')).toBe('"a ""b"" c"');
  });
});
