import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeBase64url,
  decodeCanonicalBase64url,
  encodeBase64url,
  isCanonicalBase64url,
} from './base64url.js';

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

describe('decodeCanonicalBase64url', () => {
  it('decodes exactly what isCanonicalBase64url accepts', () => {
    const chars = 'ABCDQRSTYZabcdghwxyz0189-_+/= \n.é'.split('');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }).map((bytes) => encodeBase64url(bytes)),
          fc.array(fc.constantFrom(...chars), { maxLength: 12 }).map((a) => a.join('')),
          fc.string({ maxLength: 12 }),
        ),
        (value) => {
          const decoded = decodeCanonicalBase64url(value);
          expect(decoded !== undefined).toBe(isCanonicalBase64url(value));
          if (decoded !== undefined) expect(decoded).toEqual(decodeBase64url(value));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
