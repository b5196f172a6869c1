import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { COMMAND_TYPES, commandSchema } from './commands.js';
import { MAX_RELEASE_KEYS } from './limits.js';

const fields = {
  v: 1,
  id: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  exp: 1_767_229_200,
  device: 'gw-1',
};
const manifest = 'eyJhbGciOiJFZERTQSJ9.eyJuYW1lIjoieCJ9.c2lnbmF0dXJl';
const releaseKey: Record<string, string> = {
  ...(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as Record<string, string>),
  kid: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
};

const offer = {
  ...fields,
  type: 'ota.offer',
  rolloutId: '0b6f3c1e-8a41-4c2e-9d7e-3f1a2b4c5d6e',
  component: 'main',
  manifest,
  url: 'https://ota.example.com/firmware/main-1.4.2.bin',
};

describe('commandSchema (PROTOCOL.md §8)', () => {
  it.each([
    offer,
    { ...offer, url: 'http://10.0.0.2:8080/fw.bin', rollbackTarget: '1.3.0' },
    { ...fields, type: 'config.desired', version: 7, config: { batch: { maxRecords: 500 } } },
    {
      ...fields,
      type: 'telemetry.rejected',
      boot: '3f9c0a1e',
      seq: [1200, 1299],
      reason: 'not_child',
    },
    { ...fields, type: 'keys.release', keys: [releaseKey] },
    { ...fields, type: 'ping' },
    { ...fields, type: 'reboot' },
  ])('accepts %o', (command) => {
    expect(commandSchema.parse(command)).toEqual(command);
  });

  it('covers every command type', () => {
    expect(COMMAND_TYPES).toEqual([
      'ota.offer',
      'config.desired',
      'telemetry.rejected',
      'keys.release',
      'ping',
      'reboot',
    ]);
  });

  it('drops unknown fields, so newer services stay compatible', () => {
    expect(commandSchema.parse({ ...fields, type: 'ping', hint: 'x' })).toEqual({
      ...fields,
      type: 'ping',
    });
  });

  it.each([
    ['an unknown type', { ...fields, type: 'shutdown' }, 'type'],
    ['a non-uuid id', { ...fields, type: 'ping', id: 'cmd-1' }, 'id'],
    ['no exp', { ...fields, type: 'ping', exp: undefined }, 'exp'],
    ['a fractional exp', { ...fields, type: 'ping', exp: 1.5 }, 'exp'],
    ['no target device', { ...fields, type: 'ping', device: undefined }, 'device'],
    ['v 2', { ...fields, type: 'ping', v: 2 }, 'v'],
    ['an ftp url', { ...offer, url: 'ftp://ota.example.com/fw.bin' }, 'url'],
    ['a relative url', { ...offer, url: '/fw.bin' }, 'url'],
    ['a manifest that is not a JWS', { ...offer, manifest: '{"name":"x"}' }, 'manifest'],
    ['a non-semver rollback target', { ...offer, rollbackTarget: 'previous' }, 'rollbackTarget'],
    [
      'an unknown rejection reason',
      { ...fields, type: 'telemetry.rejected', boot: '3f9c0a1e', seq: [1, 2], reason: 'nope' },
      'reason',
    ],
    [
      'a bad rejection seq',
      { ...fields, type: 'telemetry.rejected', boot: '3f9c0a1e', seq: [2, 1], reason: 'schema' },
      'seq',
    ],
    ['no release keys', { ...fields, type: 'keys.release', keys: [] }, 'keys'],
    [
      'a release key without kid',
      { ...fields, type: 'keys.release', keys: [{ ...releaseKey, kid: undefined }] },
      'keys.0.kid',
    ],
    [
      'a private release key',
      { ...fields, type: 'keys.release', keys: [{ ...releaseKey, d: releaseKey.x }] },
      'keys.0.d',
    ],
    [
      'too many release keys',
      { ...fields, type: 'keys.release', keys: Array(MAX_RELEASE_KEYS + 1).fill(releaseKey) },
      'keys',
    ],
    [
      'a config that is not an object',
      { ...fields, type: 'config.desired', version: 1, config: [] },
      'config',
    ],
  ])('refuses %s at %s', (_what, command, path) => {
    const result = commandSchema.safeParse(command);
    expect(result.error?.issues[0]?.path.join('.')).toBe(path);
  });
});
