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
