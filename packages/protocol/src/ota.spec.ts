import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { compareSemver, isSemver, manifestSchema, OTA_STATES, semverSchema } from './ota.js';

describe('semver', () => {
  it.each([
    '0.0.0',
    '1.4.2',
    '10.20.30',
    '1.0.0-alpha',
    '1.0.0-alpha.1',
    '1.0.0-0.3.7',
    '1.0.0-x.7.z.92',
    '1.0.0-x-y-z.--',
    '1.0.0+20130313144700',
    '1.0.0-beta+exp.sha.5114f85',
    '1.0.0+21AF26D3----117B344092BD',
    '99999999999999999999.0.0',
  ])('accepts %j', (version) => {
    expect(isSemver(version)).toBe(true);
    expect(semverSchema.safeParse(version).success).toBe(true);
  });

  it.each([
    '1',
    '1.2',
    '1.2.3.4',
    'v1.2.3',
    '01.2.3',
    '1.02.3',
    '1.2.03',
    '1.2.3-',
    '1.2.3-01',
    '1.2.3-a..b',
    '1.2.3+',
    '1.2.3+a..b',
    '1.2.3 ',
    ' 1.2.3',
    '1.2.3\n',
    '1.2.3-é',
    '١.٢.٣',
    '',
    `1.0.0-${'a'.repeat(200)}`,
  ])('refuses %j', (version) => {
    expect(isSemver(version)).toBe(false);
    expect(semverSchema.safeParse(version).success).toBe(false);
  });

  it('orders versions as semver.org §11 does', () => {
    const ordered = [
      '0.9.99',
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '2.0.0',
      '2.1.0',
      '2.1.1',
      '10.0.0',
      '9007199254740993.0.0',
      '9007199254740994.0.0',
    ];
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        expect(compareSemver(ordered[i]!, ordered[j]!)).toBe(Math.sign(i - j));
      }
    }
  });

  it('ignores build metadata', () => {
    expect(compareSemver('1.0.0+a', '1.0.0+b')).toBe(0);
    expect(compareSemver('1.0.0-rc.1+a', '1.0.0-rc.1')).toBe(0);
  });

  it('is antisymmetric on generated versions', () => {
    const part = fc.oneof(fc.constant('0'), fc.stringMatching(/^[1-9][0-9]{0,3}$/));
    const pre = fc.stringMatching(
      /^(0|[1-9][0-9]{0,2}|[a-z-]{1,3})(\.(0|[1-9][0-9]{0,2}|[a-z-]{1,3})){0,2}$/,
    );
    const version = fc
      .tuple(part, part, part, fc.option(pre, { nil: undefined }))
      .map(([a, b, c, p]) => `${a}.${b}.${c}${p === undefined ? '' : `-${p}`}`);
    fc.assert(
      fc.property(version, version, (a, b) => {
        expect(isSemver(a) && isSemver(b)).toBe(true);
        expect(compareSemver(a, b)).toBe(-compareSemver(b, a) || 0);
        if (a === b) expect(compareSemver(a, b)).toBe(0);
      }),
    );
  });

  it('throws a ProtocolError for a non-semver', () => {
    expect(() => compareSemver('1.0', '1.0.0')).toThrow(ProtocolError);
  });
});

describe('OTA_STATES (PROTOCOL.md §8)', () => {
  it('lists the states in order', () => {
    expect(OTA_STATES).toEqual([
      'offered',
      'downloading',
      'verifying',
      'installing',
      'rebooting',
      'trial',
      'succeeded',
      'failed',
      'rolled_back',
    ]);
  });
});

describe('manifestSchema (PROTOCOL.md §8)', () => {
  const manifest = {
    name: 'outpost-th-sensor',
    component: 'main',
    version: '1.4.2',
    hardware: ['th-sensor-r2', 'th-sensor-r3'],
    size: 183_452,
    sha256: 'a'.repeat(64),
    minVersion: '1.0.0',
    createdAt: 1_767_225_600,
  };

  it('accepts a manifest, minVersion optional', () => {
    expect(manifestSchema.parse(manifest)).toEqual(manifest);
    const { minVersion: _minVersion, ...withoutMin } = manifest;
    expect(manifestSchema.parse(withoutMin)).toEqual(withoutMin);
  });

  it.each([
    ['a non-semver version', { version: '1.4' }, 'version'],
    ['a non-semver minVersion', { minVersion: 'latest' }, 'minVersion'],
    ['upper-case sha256', { sha256: 'A'.repeat(64) }, 'sha256'],
    ['a short sha256', { sha256: 'a'.repeat(63) }, 'sha256'],
    ['no hardware', { hardware: [] }, 'hardware'],
    ['a hardware id with a space', { hardware: ['th sensor'] }, 'hardware.0'],
    ['a zero size', { size: 0 }, 'size'],
    ['a fractional size', { size: 1.5 }, 'size'],
    ['a huge size', { size: 2 ** 40 }, 'size'],
    ['an upper-case component', { component: 'Main' }, 'component'],
    ['an empty name', { name: '' }, 'name'],
    ['a createdAt string', { createdAt: '2026-01-01' }, 'createdAt'],
  ])('refuses %s at %s', (_what, change, path) => {
    const result = manifestSchema.safeParse({ ...manifest, ...change });
    expect(result.error?.issues.map((issue) => issue.path.join('.'))).toEqual([path]);
  });
});
