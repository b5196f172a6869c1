import { roleSchema, SIGNING_ALGORITHMS } from '@outpost/protocol/claims';
import { deviceIdSchema, deviceKindSchema } from '@outpost/protocol/ids';
import { MAX_TAGS } from '@outpost/protocol/limits';
import { nameSchema, tagKeySchema, tagPairSchema, tagValueSchema } from '@outpost/protocol/tags';
import { InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { DURATION_HINT, formatDuration, parseDurationSeconds } from './duration.js';
import { UsageError } from './errors.js';

/**
 * Flags and arguments, each parsed once with zod where commander reads it. A bad value is
 * a usage error (exit code 2) naming the rule, raised before any request is made.
 */

export type TagPair = readonly [string, string];
export { nameSchema, tagKeySchema, tagPairSchema, tagValueSchema };

export const tokenNameSchema = nameSchema.max(64, 'token names are at most 64 characters');
export const searchSchema = z
  .string()
  .min(1, 'search text may not be empty')
  .max(64, 'search text is at most 64 characters');
export const listStatusSchema = z.enum([
  'online',
  'offline',
  'buffering',
  'pending',
  'active',
  'revoked',
]);
export const limitSchema = z.coerce
  .number('expected a whole number')
  .int('expected a whole number')
  .min(1, 'at least 1')
  .max(500, 'at most 500');
export const algSchema = z.enum(SIGNING_ALGORITHMS);
export const tokenIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'token ids match ^[A-Za-z0-9_-]{1,64}$');
export const serverUrlSchema = z
  .url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL' })
  .transform((u) => u.replace(/\/+$/, ''));
export { deviceIdSchema, deviceKindSchema, roleSchema };

export function durationSchema(min: number, max: number) {
  return z.string().transform((text, ctx) => {
    const seconds = parseDurationSeconds(text);
    if (seconds === undefined) {
      ctx.addIssue({ code: 'custom', message: DURATION_HINT });
      return z.NEVER;
    }
    if (seconds < min || seconds > max) {
      ctx.addIssue({
        code: 'custom',
        message: `must be between ${formatDuration(min)} and ${formatDuration(max)}`,
      });
      return z.NEVER;
    }
    return seconds;
  });
}

/** The first issue of a failed parse, as one readable phrase. */
export function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid value';
  return issue.message;
}

/** A commander argument parser backed by a zod schema. */
export function parser<T>(schema: z.ZodType<T>): (value: string) => T {
  return (value) => {
    const result = schema.safeParse(value);
    if (!result.success) throw new InvalidArgumentError(issueText(result.error));
    return result.data;
  };
}

/** A commander parser for a repeatable flag: every value parsed, collected in order. */
export function repeatable<T>(schema: z.ZodType<T>): (value: string, previous?: T[]) => T[] {
  const parse = parser(schema);
  return (value, previous = []) => [...previous, parse(value)];
}

/** `--tag` pairs as a record; a key given twice is a mistake worth saying. */
export function tagsFromPairs(pairs: readonly TagPair[] | undefined): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [key, value] of pairs ?? []) {
    if (Object.hasOwn(tags, key)) {
      throw new UsageError(`--tag ${key} is given twice`);
    }
    tags[key] = value;
  }
  if (Object.keys(tags).length > MAX_TAGS) {
    throw new UsageError(`at most ${MAX_TAGS} --tag flags`);
  }
  return tags;
}

/** An API token as the server accepts it in `Authorization: Bearer`. */
export const apiTokenSchema = z
  .string()
  .trim()
  .regex(
    /^[\x21-\x7e]{1,4096}$/,
    'a token is printable ASCII without spaces, at most 4096 characters',
  );
