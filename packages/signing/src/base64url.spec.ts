import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBase64url, encodeBase64url, isCanonicalBase64url } from './base64url.js';

describe('isCanonicalBase64url', () => {
  it('accepts every encoding and decodes it back', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const encoded = encodeBase64url(bytes);
        expect(isCanonicalBase64url(encoded)).toBe(true);
        expect(decodeBase64url(encoded)).toEqual(bytes);
      }),
    );
  });

  it.each([
    ['padding', 'QQ=='],
    ['standard alphabet', 'a+/b'],
    ['whitespace', 'QU E'],
    ['impossible length', 'QUJDR'],
    ['non-zero trailing bits (2 chars)', 'QR'],
    ['non-zero trailing bits (3 chars)', 'QUJ'],
  ])('refuses %s', (_name, value) => {
    expect(isCanonicalBase64url(value)).toBe(false);
  });
});
