import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isWellFormedText, textSchema } from './text.js';

describe('isWellFormedText', () => {
  it.each([
    ['', true],
    ['plain', true],
    ['tab\tand\nnewline', true],
    ['emoji \ud83d\ude00', true],
    ['U+0000 \u0000', false],
    ['lone high \ud83d', false],
    ['lone low \ude00', false],
    ['high at the end \ud83d', false],
  ])('%j → %s', (value, ok) => {
    expect(isWellFormedText(value)).toBe(ok);
  });

  it('means: no U+0000 and every surrogate in a pair', () => {
    const unit = fc.oneof(
      fc.integer({ min: 0, max: 0xffff }),
      fc.constantFrom(0, 0x41, 0xd800, 0xdbff, 0xdc00, 0xdfff),
    );
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 6 }), (units) => {
        const value = String.fromCharCode(...units);
        let paired = true;
        for (let i = 0; i < units.length; i++) {
          const u = units[i]!;
          if (u >= 0xd800 && u <= 0xdbff) {
            const next = units[i + 1];
            if (next !== undefined && next >= 0xdc00 && next <= 0xdfff) i++;
            else paired = false;
          } else if (u >= 0xdc00 && u <= 0xdfff) {
            paired = false;
          }
        }
        expect(isWellFormedText(value)).toBe(paired && !units.includes(0));
      }),
      { numRuns: 5_000 },
    );
  });
});

describe('textSchema', () => {
  it('bounds length and refuses malformed text with a useful message', () => {
    const schema = textSchema(4, 1);
    expect(schema.safeParse('abcd').success).toBe(true);
    expect(schema.safeParse('').success).toBe(false);
    expect(schema.safeParse('abcde').success).toBe(false);
    const result = schema.safeParse('a\u0000');
    expect(result.error?.issues[0]?.message).toMatch(/U\+0000/);
  });
});
