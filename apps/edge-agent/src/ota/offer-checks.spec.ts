import type { Manifest, OtaState } from '@outpost/protocol/ota';
import { SigningError } from '@outpost/signing/errors';
import { describe, expect, it } from 'vitest';
import {
  canMove,
  decideOffer,
  manifestRefusal,
  relateOffer,
  resumeAction,
  sameOrigin,
  stagingNames,
} from './offer-checks.js';

const manifest = (over: Partial<Manifest> = {}): Manifest => ({
  name: 'outpost-agent',
  component: 'agent',
  version: '1.2.0',
  hardware: ['rpi4', 'linux-x64'],
  size: 10,
  sha256: 'a'.repeat(64),
  createdAt: 1_760_000_000,
  ...over,
});

describe('decideOffer', () => {
  it.each([
    ['a newer version installs', {}, { version: '1.1.0' }, undefined, 'install'],
    ['the same version is current', {}, { version: '1.2.0' }, undefined, 'current'],
    [
      'build metadata does not make it newer',
      { version: '1.2.0+b7' },
      { version: '1.2.0' },
      undefined,
      'current',
    ],
    [
      'an older version is a downgrade',
      { version: '1.0.0' },
      { version: '1.1.0' },
      undefined,
      'downgrade',
    ],
    [
      'a pre-release of the running version is a downgrade',
      { version: '1.2.0-rc.1' },
      { version: '1.2.0' },
      undefined,
      'downgrade',
    ],
    [
      'the rollback target installs though older',
      { version: '1.0.0' },
      { version: '1.1.0' },
      '1.0.0',
      'install',
    ],
    [
      'another rollback target does not',
      { version: '1.0.0' },
      { version: '1.1.0' },
      '0.9.0',
      'downgrade',
    ],
    [
      'other hardware',
      { hardware: ['rpi3'] },
      { version: '1.1.0' },
      undefined,
      'hardware_mismatch',
    ],
    [
      'minVersion above the running one',
      { minVersion: '1.1.5' },
      { version: '1.1.0' },
      undefined,
      'below_min_version',
    ],
    [
      'minVersion equal to the running one',
      { minVersion: '1.1.0' },
      { version: '1.1.0' },
      undefined,
      'install',
    ],
    [
      'another component',
      { component: 'main' },
      { version: '1.1.0' },
      undefined,
      'component_mismatch',
    ],
  ] as const)('%s', (_what, over, installed, rollbackTarget, expected) => {
    const decision = decideOffer({
      offer: { component: 'agent', rollbackTarget },
      manifest: manifest(over as Partial<Manifest>),
      installed: { hardware: 'rpi4', ...installed },
    });
    expect(decision.kind === 'refuse' ? decision.reason : decision.kind).toBe(expected);
  });

  it('refuses when the installed version cannot be told', () => {
    const decision = decideOffer({
      offer: { component: 'agent' },
      manifest: manifest(),
      installed: undefined,
    });
    expect(decision).toMatchObject({ kind: 'refuse', reason: 'device_unavailable' });
  });
});

describe('manifestRefusal', () => {
  it.each([
    [new SigningError('kid_unknown', 'x'), 'release_key_unknown'],
    [new SigningError('kid_mismatch', 'x'), 'release_key_unknown'],
    [new SigningError('signature_invalid', 'x'), 'manifest_signature_invalid'],
    [new SigningError('alg_not_allowed', 'x'), 'manifest_signature_invalid'],
    [new SigningError('payload_invalid', 'x'), 'manifest_invalid'],
    [new SigningError('token_malformed', 'x'), 'manifest_invalid'],
    [new Error('other'), 'manifest_invalid'],
  ])('%s → %s', (err, reason) => {
    expect(manifestRefusal(err)).toBe(reason);
  });
});

describe('sameOrigin', () => {
  it.each([
    ['https://ingest.example:8443/api/v1/firmware/x/artifact', 'https://ingest.example:8443', true],
    [
      'https://ingest.example:8443/api/v1/firmware/x/artifact',
      'https://ingest.example:8443/',
      true,
    ],
    ['http://ingest.example:8443/a', 'https://ingest.example:8443', false],
    ['https://evil.example/a', 'https://ingest.example', false],
    ['https://ingest.example.evil.example/a', 'https://ingest.example', false],
    ['https://ingest.example:9999/a', 'https://ingest.example', false],
    ['not a url', 'https://ingest.example', false],
  ])('%s from %s: %s', (url, server, expected) => {
    expect(sameOrigin(url, server)).toBe(expected);
  });
});

describe('stagingNames', () => {
  it('derives names from the digest alone', () => {
    expect(stagingNames('0'.repeat(64))).toEqual({
      partial: `${'0'.repeat(64)}.part`,
      complete: `${'0'.repeat(64)}.img`,
    });
  });

  it.each(['../x', `${'0'.repeat(63)}/`, 'A'.repeat(64), '', `${'0'.repeat(64)}/../x`])(
    'refuses %j',
    (value) => {
      expect(() => stagingNames(value)).toThrow(RangeError);
    },
  );
});

describe('canMove', () => {
  it.each([
    ['offered', 'downloading', true],
    ['downloading', 'verifying', true],
    ['verifying', 'installing', true],
    ['installing', 'rebooting', true],
    ['rebooting', 'trial', true],
    ['offered', 'installing', true],
    ['trial', 'succeeded', true],
    ['downloading', 'failed', true],
    ['trial', 'rolled_back', true],
    ['installing', 'downloading', false],
    ['trial', 'trial', false],
    ['succeeded', 'failed', false],
    ['failed', 'downloading', false],
    ['rolled_back', 'succeeded', false],
  ] as const)('%s → %s: %s', (from, to, expected) => {
    expect(canMove(from, to)).toBe(expected);
  });
});

describe('resumeAction', () => {
  it.each([
    ['offered', false, 'restart'],
    ['downloading', false, 'restart'],
    ['verifying', false, 'restart'],
    ['installing', false, 'install'],
    ['rebooting', false, 'install'],
    ['trial', false, 'install'],
    ['succeeded', false, 'report'],
    ['failed', false, 'report'],
    ['rolled_back', false, 'report'],
    ['succeeded', true, 'none'],
    ['failed', true, 'none'],
  ] as const)('%s (reported: %s) → %s', (state, reported, kind) => {
    expect(resumeAction({ state: state as OtaState, reported })).toEqual({ kind });
  });
});

describe('relateOffer', () => {
  it.each([
    ['nothing known', undefined, 'new'],
    ['the same rollout, downloading', { rolloutId: 'r1', state: 'downloading' }, 'duplicate'],
    ['the same rollout, done', { rolloutId: 'r1', state: 'succeeded' }, 'duplicate'],
    ['the same rollout, failed', { rolloutId: 'r1', state: 'failed' }, 'duplicate'],
    ['another rollout, still running', { rolloutId: 'r0', state: 'trial' }, 'busy'],
    ['another rollout, finished', { rolloutId: 'r0', state: 'rolled_back' }, 'new'],
  ] as const)('%s → %s', (_what, existing, expected) => {
    expect(relateOffer(existing as { rolloutId: string; state: OtaState } | undefined, 'r1')).toBe(
      expected,
    );
  });
});
