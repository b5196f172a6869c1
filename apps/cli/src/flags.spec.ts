import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.js';
import {
  apiTokenSchema,
  deviceIdSchema,
  durationSchema,
  limitSchema,
  parser,
  repeatable,
  serverUrlSchema,
  tagPairSchema,
  tagsFromPairs,
} from './flags.js';

describe('--tag k=v', () => {
  const parseTag = parser(tagPairSchema);

  it('splits at the first =, so values may hold = and be empty', () => {
    expect(parseTag('site=berlin')).toEqual(['site', 'berlin']);
    expect(parseTag('expr=a=b')).toEqual(['expr', 'a=b']);
    expect(parseTag('empty=')).toEqual(['empty', '']);
  });

  it.each([
    ['site', 'expected key=value'],
    ['=x', 'expected key=value'],
    ['bad key=x', 'tag keys match'],
    [`${'k'.repeat(65)}=x`, 'tag keys match'],
    [`k=${'v'.repeat(129)}`, 'at most 128'],
    ['k=a\u001bb', 'control characters'],
  ])('refuses %j with the rule', (value, rule) => {
    expect(() => parseTag(value)).toThrow(InvalidArgumentError);
    expect(() => parseTag(value)).toThrow(rule);
  });

  it('collects repeated flags in order', () => {
    const collect = repeatable(tagPairSchema);
    expect(collect('b=2', collect('a=1'))).toEqual([
      ['a', '1'],
      ['b', '2'],
    ]);
  });

  it('turns pairs into a record and names a key given twice', () => {
    expect(
      tagsFromPairs([
        ['a', '1'],
        ['b', '2'],
      ]),
    ).toEqual({ a: '1', b: '2' });
    expect(tagsFromPairs(undefined)).toEqual({});
    expect(() =>
      tagsFromPairs([
        ['a', '1'],
        ['a', '2'],
      ]),
    ).toThrow(UsageError);
    expect(() =>
      tagsFromPairs([
        ['a', '1'],
        ['a', '2'],
      ]),
    ).toThrow('--tag a is given twice');
  });

  it('caps the number of tags', () => {
    const many = Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'] as const);
    expect(() => tagsFromPairs(many)).toThrow('at most 32');
  });
});

describe('durations', () => {
  const ttl = parser(durationSchema(60, 30 * 86_400));

  it('reads a duration within bounds', () => {
    expect(ttl('24h')).toBe(86_400);
    expect(ttl('1m')).toBe(60);
  });

  it('names the expected form and the bounds', () => {
    expect(() => ttl('24x')).toThrow('expected a duration such as');
    // A bare number is seconds, as everywhere in Outpost.
    expect(() => ttl('24')).toThrow('must be between 1m and 30d');
    expect(() => ttl('59s')).toThrow('must be between 1m and 30d');
    expect(() => ttl('31d')).toThrow('must be between 1m and 30d');
  });
});

describe('other flags', () => {
  it('checks device ids against PROTOCOL.md §1', () => {
    const id = parser(deviceIdSchema);
    expect(id('boiler-7')).toBe('boiler-7');
    expect(() => id('Boiler')).toThrow('device id must match ^[a-z0-9][a-z0-9._-]{0,63}$');
    expect(() => id('-x')).toThrow(InvalidArgumentError);
  });

  it('bounds --limit', () => {
    const limit = parser(limitSchema);
    expect(limit('25')).toBe(25);
    expect(() => limit('0')).toThrow('at least 1');
    expect(() => limit('501')).toThrow('at most 500');
    expect(() => limit('2.5')).toThrow('whole number');
    expect(() => limit('ten')).toThrow('whole number');
  });

  it('takes http(s) server URLs without a trailing slash', () => {
    const url = parser(serverUrlSchema);
    expect(url('https://ingest.example:8080/')).toBe('https://ingest.example:8080');
    expect(url('http://127.0.0.1:8080/outpost//')).toBe('http://127.0.0.1:8080/outpost');
    expect(() => url('ftp://x')).toThrow('http:// or https://');
    expect(() => url('ingest.example')).toThrow(InvalidArgumentError);
  });

  it('takes tokens that fit an Authorization header', () => {
    const token = parser(apiTokenSchema);
    expect(token(' abc.def.ghi ')).toBe('abc.def.ghi');
    expect(() => token('two words')).toThrow('printable ASCII');
    expect(() => token('x'.repeat(4097))).toThrow(InvalidArgumentError);
  });
});
