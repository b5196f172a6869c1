import { describe, expect, it } from 'vitest';
import { nameSchema, tagPairSchema, tagsSchema } from './tags.js';

describe('tags', () => {
  it('parses k=v pairs, the value keeping any further =', () => {
    expect(tagPairSchema.parse('site=north')).toEqual(['site', 'north']);
    expect(tagPairSchema.parse('eq=a=b')).toEqual(['eq', 'a=b']);
    expect(tagPairSchema.safeParse('novalue').success).toBe(false);
    expect(tagPairSchema.safeParse("k'=v").success).toBe(false);
  });

  it('reports a bad key at its own path and bounds the count', () => {
    const bad = tagsSchema.safeParse({ 'bad key': 'x' });
    expect(bad.success).toBe(false);
    if (!bad.success) expect(bad.error.issues[0]?.path).toEqual(['bad key']);
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v']));
    expect(tagsSchema.safeParse(many).success).toBe(false);
  });

  it('refuses control characters in names', () => {
    expect(nameSchema.safeParse('Boiler 7').success).toBe(true);
    expect(nameSchema.safeParse('bad\u0007').success).toBe(false);
  });
});
