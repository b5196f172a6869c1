import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readEnvironment, readProfile, resolveConnection, writeProfile } from './config.js';
import { CliError, errorLine, UsageError } from './errors.js';

const profile = { url: 'https://a.example', token: 'profile-token' };
const noEnv = { url: undefined, token: undefined };

describe('resolveConnection', () => {
  it('prefers flags over the environment over the profile', () => {
    expect(
      resolveConnection({
        flags: { url: 'https://flag.example', token: 'flag-token' },
        env: { url: 'https://env.example', token: 'env-token' },
        profile,
      }),
    ).toEqual({ url: 'https://flag.example', token: 'flag-token', tokenSource: 'flag' });
    expect(
      resolveConnection({
        flags: {},
        env: { url: 'https://env.example', token: 'env-token' },
        profile,
      }),
    ).toEqual({ url: 'https://env.example', token: 'env-token', tokenSource: 'env' });
    expect(resolveConnection({ flags: {}, env: noEnv, profile })).toEqual({
      ...profile,
      tokenSource: 'profile',
    });
  });

  it('resolves the URL and the token each on their own', () => {
    expect(resolveConnection({ flags: { token: 'flag-token' }, env: noEnv, profile })).toEqual({
      url: profile.url,
      token: 'flag-token',
      tokenSource: 'flag',
    });
    expect(resolveConnection({ flags: { url: profile.url }, env: noEnv, profile })).toEqual({
      url: profile.url,
      token: profile.token,
      tokenSource: 'profile',
    });
  });

  it("never sends the profile's token to another server", () => {
    const err = (() => {
      try {
        resolveConnection({ flags: { url: 'https://other.example' }, env: noEnv, profile });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CliError);
    expect(errorLine(err)).toMatch(
      /^error: no token for https:\/\/other\.example: the profile is for https:\/\/a\.example/,
    );
  });

  it('says how to log in when nothing is configured', () => {
    expect(() => resolveConnection({ flags: {}, env: noEnv, profile: undefined })).toThrow(
      'not logged in',
    );
    try {
      resolveConnection({
        flags: {},
        env: { url: 'https://env.example', token: undefined },
        profile: undefined,
      });
    } catch (err) {
      expect(errorLine(err)).toBe(
        'error: not logged in: run `outpost login --url URL --token TOKEN` or set OUTPOST_URL and OUTPOST_TOKEN',
      );
    }
  });
});

describe('readEnvironment', () => {
  it('puts the profile under XDG_CONFIG_HOME, else ~/.config, unless OUTPOST_PROFILE says', () => {
    expect(readEnvironment({}, '/home/t').profilePath).toBe('/home/t/.config/outpost/profile.json');
    expect(readEnvironment({ XDG_CONFIG_HOME: '/xdg' }, '/home/t').profilePath).toBe(
      '/xdg/outpost/profile.json',
    );
    // A relative XDG_CONFIG_HOME is invalid (XDG Base Directory spec) and ignored.
    expect(readEnvironment({ XDG_CONFIG_HOME: 'rel' }, '/home/t').profilePath).toBe(
      '/home/t/.config/outpost/profile.json',
    );
    expect(
      readEnvironment({ XDG_CONFIG_HOME: '/xdg', OUTPOST_PROFILE: '/etc/p.json' }, '/home/t')
        .profilePath,
    ).toBe('/etc/p.json');
  });

  it('reads URL, token and timeout, treating empty as unset', () => {
    const env = readEnvironment(
      { OUTPOST_URL: 'http://127.0.0.1:8080/', OUTPOST_TOKEN: 'abc', OUTPOST_TIMEOUT: '2m' },
      '/h',
    );
    expect(env).toMatchObject({ url: 'http://127.0.0.1:8080', token: 'abc', timeoutMs: 120_000 });
    expect(readEnvironment({ OUTPOST_URL: '', OUTPOST_TOKEN: ' ' }, '/h')).toMatchObject({
      url: undefined,
      token: undefined,
      timeoutMs: 30_000,
    });
  });

  it('names every bad variable at once', () => {
    let err: unknown;
    try {
      readEnvironment({ OUTPOST_URL: 'ftp://x', OUTPOST_TIMEOUT: 'soon' }, '/h');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect(errorLine(err)).toContain('OUTPOST_URL: expected an http:// or https:// URL');
    expect(errorLine(err)).toContain('OUTPOST_TIMEOUT: expected a duration');
  });
});

describe('profile file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outpost-cli-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is written 0600 in a 0700 directory and read back', async () => {
    const path = join(dir, 'config', 'outpost', 'profile.json');
    await writeProfile(path, profile);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'config', 'outpost'))).mode & 0o777).toBe(0o700);
    expect(await readProfile(path)).toEqual(profile);
  });

  it('is replaced whole and made owner-only', async () => {
    const path = join(dir, 'profile.json');
    await writeFile(path, '{}', { mode: 0o644 });
    await writeProfile(path, profile);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(profile);
  });

  it('is absent without error when there is none', async () => {
    expect(await readProfile(join(dir, 'none.json'))).toBeUndefined();
  });

  it('is refused with a way out when it is broken', async () => {
    const path = join(dir, 'profile.json');
    await writeFile(path, '{"url": 1}');
    await expect(readProfile(path)).rejects.toThrow(`the profile ${path} is not valid`);
  });
});
