import { z } from 'zod';
import { MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH, MAX_TAGS } from './limits.js';

/**
 * Device tags and names: one rule for the API, the CLI and the agent. Tags are bounded so
 * they can become InfluxDB tags without unbounded cardinality.
 */
const noControl = /^[^\p{Cc}]*$/u;

export const tagKeySchema = z
  .string()
  .regex(
    new RegExp(`^[A-Za-z0-9_.-]{1,${MAX_TAG_KEY_LENGTH}}$`),
    `tag keys match ^[A-Za-z0-9_.-]{1,${MAX_TAG_KEY_LENGTH}}$`,
  );

export const tagValueSchema = z
  .string()
  .max(MAX_TAG_VALUE_LENGTH, `tag values are at most ${MAX_TAG_VALUE_LENGTH} characters`)
  .regex(noControl, 'tag values may not contain control characters');

/** A tag map; a bad key is reported at its own path. */
export const tagsSchema = z.record(z.string(), tagValueSchema).superRefine((tags, ctx) => {
  const keys = Object.keys(tags);
  if (keys.length > MAX_TAGS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_TAGS} tags` });
  for (const key of keys) {
    if (!tagKeySchema.safeParse(key).success) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `tag keys match ^[A-Za-z0-9_.-]{1,${MAX_TAG_KEY_LENGTH}}$`,
      });
    }
  }
});

/** `k=v` as in `--tag` flags and `?tag=` query parameters; the value may contain `=`. */
export const tagPairSchema = z
  .string()
  .max(MAX_TAG_KEY_LENGTH + MAX_TAG_VALUE_LENGTH + 1)
  .transform((s, ctx) => {
    const i = s.indexOf('=');
    if (i <= 0) {
      ctx.addIssue({ code: 'custom', message: 'expected key=value' });
      return z.NEVER;
    }
    return [s.slice(0, i), s.slice(i + 1)] as const;
  })
  .pipe(z.tuple([tagKeySchema, tagValueSchema]));

/** A human-readable name (devices, tokens, rules). */
export const nameSchema = z
  .string()
  .min(1, 'a name may not be empty')
  .max(128, 'names are at most 128 characters')
  .regex(noControl, 'names may not contain control characters');
