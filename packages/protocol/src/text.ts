import { z } from 'zod';

/** A high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const NUL_OR_SURROGATE = /[\0\uD800-\uDFFF]/;

/**
 * True when `value` encodes to well-formed UTF-8 (no lone surrogates) and holds no U+0000.
 * JSON.parse accepts both (`"\ud800"`, `"\u0000"`); MQTT forbids them in topics
 * ([MQTT-1.5.3-1], [MQTT-1.5.3-2]) and PostgreSQL text cannot store U+0000.
 */
export function isWellFormedText(value: string): boolean {
  // Most text holds neither U+0000 nor any surrogate: one pass of a plain class settles it.
  if (!NUL_OR_SURROGATE.test(value)) return true;
  return !value.includes('\0') && !LONE_SURROGATE.test(value);
}

/** A string of at most `maxLength` UTF-16 code units that passes {@link isWellFormedText}. */
export function textSchema(maxLength: number, minLength = 0) {
  return z
    .string()
    .min(minLength)
    .max(maxLength)
    .refine(isWellFormedText, 'must be well-formed Unicode without U+0000');
}
