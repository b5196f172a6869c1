import { describe, expect, it } from 'vitest';
import { publicKeyPathOf } from './keys.js';

describe('publicKeyPathOf', () => {
  it('puts the public key next to the private one', () => {
    expect(publicKeyPathOf('/k/release.json')).toBe('/k/release.pub.json');
    expect(publicKeyPathOf('/k/release')).toBe('/k/release.pub.json');
    expect(publicKeyPathOf('/k/release.JSON')).toBe('/k/release.pub.json');
  });
});
