import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { DURATION_HINT, parseDurationSeconds } from './duration.js';
import { CliError, LOGIN_HINT, UsageError } from './errors.js';
import { apiTokenSchema, serverUrlSchema } from './flags.js';
import { makePrivateDir, writePrivateFile } from './private-files.js';

/**
 * Where the CLI finds its server and token: flags, then `OUTPOST_URL` / `OUTPOST_TOKEN`, then
 * the profile written by `outpost login` (SURFACES.md). The only reader of the environment.
 */

export interface Environment {
  readonly url: string | undefined;
  readonly token: string | undefined;
  /** `OUTPOST_PROFILE`, else `$XDG_CONFIG_HOME/outpost/profile.json`, else `~/.config/…`. */
  readonly profilePath: string;
  /** `OUTPOST_TIMEOUT`: how long one request may take. */
  readonly timeoutMs: number;
}

const DEFAULT_TIMEOUT_S = 30;

const optional = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

const envSchema = z.object({
  OUTPOST_URL: optional.pipe(serverUrlSchema.optional()),
  OUTPOST_TOKEN: optional.pipe(apiTokenSchema.optional()),
  OUTPOST_PROFILE: optional,
  XDG_CONFIG_HOME: optional,
  OUTPOST_TIMEOUT: optional.pipe(
    z
      .string()
      .transform((text, ctx) => {
        const s = parseDurationSeconds(text);
        if (s === undefined || s === 0) {
          ctx.addIssue({ code: 'custom', message: DURATION_HINT });
          return z.NEVER;
        }
        return s;
      })
      .optional(),
  ),
});

/** Reads the environment once; every bad variable is named at once. */
export function readEnvironment(
  env: Readonly<Record<string, string | undefined>> = process.env,
  home: string = homedir(),
): Environment {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new UsageError(`bad environment: ${problems.join('; ')}`, 'fix or unset the variable');
  }
  const e = parsed.data;
  return Object.freeze({
    url: e.OUTPOST_URL,
    token: e.OUTPOST_TOKEN,
    profilePath: profilePathOf(e, home),
    timeoutMs: (e.OUTPOST_TIMEOUT ?? DEFAULT_TIMEOUT_S) * 1000,
  });
}

function profilePathOf(e: { OUTPOST_PROFILE?: string; XDG_CONFIG_HOME?: string }, home: string) {
  if (e.OUTPOST_PROFILE) return resolve(e.OUTPOST_PROFILE);
  // XDG Base Directory: a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const base =
    e.XDG_CONFIG_HOME && isAbsolute(e.XDG_CONFIG_HOME) ? e.XDG_CONFIG_HOME : join(home, '.config');
  return join(base, 'outpost', 'profile.json');
}

export const profileSchema = z.object({
  url: serverUrlSchema,
  token: apiTokenSchema,
});
export type Profile = z.infer<typeof profileSchema>;

/** The saved profile, or `undefined` when there is none. */
export async function readProfile(path: string): Promise<Profile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return undefined;
    throw new CliError('invalid', 'profile_unreadable', `cannot read the profile ${path}`, {
      hint: `fix its permissions or run \`outpost login\` again`,
      cause: err,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const parsed = profileSchema.safeParse(value);
  if (!parsed.success) {
    throw new CliError('invalid', 'profile_invalid', `the profile ${path} is not valid`, {
      hint: 'run `outpost login --url URL --token TOKEN` to write it again',
    });
  }
  return parsed.data;
}

/** Writes the profile owner-only (0600, directory 0700), replacing any previous one. */
export async function writeProfile(path: string, profile: Profile): Promise<void> {
  await makePrivateDir(dirname(path));
  await writePrivateFile(path, `${JSON.stringify(profile, null, 2)}\n`, { overwrite: true });
}

export type TokenSource = 'flag' | 'env' | 'profile';

export interface Connection {
  readonly url: string;
  readonly token: string;
  readonly tokenSource: TokenSource;
}

export interface ConnectionInputs {
  flags: { url?: string | undefined; token?: string | undefined };
  env: Pick<Environment, 'url' | 'token'>;
  profile: Profile | undefined;
}

/**
 * Flags win over the environment, which wins over the profile, for the URL and the token
 * each. The profile's token is only ever sent to the profile's server: pointing the CLI at
 * another URL does not hand it that token.
 */
export function resolveConnection({ flags, env, profile }: ConnectionInputs): Connection {
  const url = flags.url ?? env.url ?? profile?.url;
  if (!url)
    throw new CliError('unauthenticated', 'not_logged_in', 'not logged in', { hint: LOGIN_HINT });
  if (flags.token) return { url, token: flags.token, tokenSource: 'flag' };
  if (env.token) return { url, token: env.token, tokenSource: 'env' };
  if (profile && profile.url === url) return { url, token: profile.token, tokenSource: 'profile' };
  if (profile) {
    throw new CliError('unauthenticated', 'not_logged_in', `no token for ${url}`, {
      hint: `the profile is for ${profile.url}; pass --token, set OUTPOST_TOKEN, or run \`outpost login --url ${url} --token TOKEN\``,
    });
  }
  throw new CliError('unauthenticated', 'not_logged_in', 'not logged in', { hint: LOGIN_HINT });
}

/** What to check when the server refuses the token, depending on where it came from. */
export function tokenHint(source: TokenSource): string {
  switch (source) {
    case 'flag':
      return 'check the --token value';
    case 'env':
      return 'check OUTPOST_TOKEN or log in again';
    case 'profile':
      return 'log in again with `outpost login --url URL --token TOKEN`';
  }
}
