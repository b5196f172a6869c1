import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countMemberNames, countMembers, parseStrictJson } from './strict-json.js';

const utf8 = new TextEncoder();
const parse = (text: string) => parseStrictJson(utf8.encode(text));

describe('parseStrictJson', () => {
  it('agrees with JSON.parse on every JSON.stringify output', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        const result = parse(text);
        expect(result).toEqual({ ok: true, value: JSON.parse(text) });
      }),
      { numRuns: 300 },
    );
  });

  it('finds a duplicate name wherever it is injected', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1 }),
        fc.jsonValue(),
        (object, value) => {
          const [name] = Object.keys(object);
          const text = JSON.stringify(object);
          const injected = `${text.slice(0, -1)},${JSON.stringify(name)}:${JSON.stringify(value)}}`;
          expect(parse(JSON.stringify({ nested: [JSON.parse(text)] })).ok).toBe(true);
          expect(parse(`{"nested":[${injected}]}`)).toEqual({
            ok: false,
            reason: 'duplicate member name',
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each([
    ['duplicate top-level name', '{"a":1,"a":2}', 'duplicate member name'],
    ['duplicate nested name', '{"a":{"b":1,"c":[{"d":1,"d":1}]}}', 'duplicate member name'],
    ['escaped duplicate', '{"sub":1,"\\u0073ub":2}', 'duplicate member name'],
    [
      'duplicate after a string value with braces',
      '{"a":"{,}","b":1,"a":3}',
      'duplicate member name',
    ],
    ['byte order mark', '\ufeff{}', 'byte order mark'],
    ['trailing comma', '{"a":1,}', 'not JSON'],
    ['single quotes', "{'a':1}", 'not JSON'],
  ])('refuses %s', (_name, text, reason) => {
    expect(parse(text)).toEqual({ ok: false, reason });
  });

  it('refuses invalid UTF-8', () => {
    expect(parseStrictJson(new Uint8Array([0x22, 0xc3, 0x28, 0x22]))).toEqual({
      ok: false,
      reason: 'not UTF-8',
    });
  });

  it('allows equal names in different objects and equal strings as values', () => {
    expect(parse('{"a":{"a":"a"},"b":[{"a":1},{"a":2}],"c":"a"}').ok).toBe(true);
  });

  it('counts member names in the text and members in the value alike', () => {
    const text = '{ "x" : [1, {"y":"\\"}\\\\", "z":{}}], "w\\"":"a:b,{c"}';
    expect(countMemberNames(text)).toBe(4);
    expect(countMembers(JSON.parse(text))).toBe(4);
    expect(countMemberNames('[{"x":1},{"x":2},"y"]')).toBe(2);
  });
});
