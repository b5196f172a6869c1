import { z } from 'zod';
import { ProtocolError } from './errors.js';
import { MAX_FIRMWARE_BYTES, MAX_MANIFEST_HARDWARE, MAX_VERSION_LENGTH } from './limits.js';
import { textSchema } from './text.js';

/**
 * PROTOCOL.md §8: OTA device states, in order of a successful update; `failed` and
 * `rolled_back` end an update early and carry a reason.
 */
export const OTA_STATES = [
  'offered',
  'downloading',
  'verifying',
  'installing',
  'rebooting',
  'trial',
  'succeeded',
  'failed',
  'rolled_back',
] as const;
export type OtaState = (typeof OTA_STATES)[number];
export const otaStateSchema = z.enum(OTA_STATES);

export const OTA_TERMINAL_STATES = ['succeeded', 'failed', 'rolled_back'] as const;
export type OtaTerminalState = (typeof OTA_TERMINAL_STATES)[number];

/** Semantic Versioning 2.0.0, the regex suggested at semver.org (ASCII digits only). */
export const SEMVER_PATTERN =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export function isSemver(value: unknown): value is string {
  return (
    typeof value === 'string' && value.length <= MAX_VERSION_LENGTH && SEMVER_PATTERN.test(value)
  );
}

export const semverSchema = z
  .string()
  .max(MAX_VERSION_LENGTH)
  .regex(SEMVER_PATTERN, 'must be a semantic version (semver.org 2.0.0)');

/** Compares digit strings without leading zeros, of any length. */
function compareNumeric(a: string, b: string): number {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const NUMERIC_IDENTIFIER = /^\d+$/;

/**
 * Semver precedence (semver.org §11): -1, 0 or 1. Build metadata is ignored, so
 * `1.0.0+a` and `1.0.0+b` compare equal. Throws `payload_invalid` for a non-semver input.
 */
export function compareSemver(a: string, b: string): -1 | 0 | 1 {
  const left = SEMVER_PATTERN.exec(a);
  const right = SEMVER_PATTERN.exec(b);
  if (left === null || right === null) {
    throw new ProtocolError('payload_invalid', 'not a semantic version', {
      details: { version: left === null ? a : b },
    });
  }
  for (let i = 1; i <= 3; i++) {
    const order = compareNumeric(left[i]!, right[i]!);
    if (order !== 0) return Math.sign(order) as -1 | 1;
  }
  const leftPre = left[4];
  const rightPre = right[4];
  // A pre-release version has lower precedence than its release (§11.3).
  if (leftPre === undefined || rightPre === undefined) {
    if (leftPre === rightPre) return 0;
    return leftPre === undefined ? 1 : -1;
  }
  const leftIds = leftPre.split('.');
  const rightIds = rightPre.split('.');
  for (let i = 0; i < Math.max(leftIds.length, rightIds.length); i++) {
    const l = leftIds[i];
    const r = rightIds[i];
    // A larger set of pre-release fields has higher precedence when all before are equal.
    if (l === undefined) return -1;
    if (r === undefined) return 1;
    const lNumeric = NUMERIC_IDENTIFIER.test(l);
    const rNumeric = NUMERIC_IDENTIFIER.test(r);
    // Numeric identifiers have lower precedence than alphanumeric ones (§11.4.3).
    if (lNumeric !== rNumeric) return lNumeric ? -1 : 1;
    const order = lNumeric ? compareNumeric(l, r) : l < r ? -1 : l > r ? 1 : 0;
    if (order !== 0) return Math.sign(order) as -1 | 1;
  }
  return 0;
}

/** A firmware component of a device (`main`, `radio`, `agent`), named like a device id. */
export const COMPONENT_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const componentNameSchema = z
  .string()
  .regex(COMPONENT_NAME_PATTERN, 'component must match ^[a-z0-9][a-z0-9._-]{0,63}$');

/** A hardware id as a device reports it (PROTOCOL.md §10 `ID <hardware> ...`). */
export const HARDWARE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const hardwareIdSchema = z
  .string()
  .regex(HARDWARE_ID_PATTERN, 'hardware id must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');

/** Rollout ids are chosen by the service (a UUID fits); bounded and topic-safe. */
export const ROLLOUT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const rolloutIdSchema = z
  .string()
  .regex(ROLLOUT_ID_PATTERN, 'rollout id must match ^[A-Za-z0-9_-]{1,64}$');

/** SHA-256 digest as 64 lowercase hex characters, the one spelling we compare. */
export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

/**
 * PROTOCOL.md §8: payload of a firmware manifest, signed by a release key. `size` and
 * `sha256` describe the image bytes; `minVersion` is the oldest version it may update
 * from; `createdAt` is epoch seconds.
 */
export const manifestSchema = z.object({
  name: textSchema(128, 1),
  component: componentNameSchema,
  version: semverSchema,
  hardware: z.array(hardwareIdSchema).min(1).max(MAX_MANIFEST_HARDWARE),
  size: z.number().int().positive().max(MAX_FIRMWARE_BYTES),
  sha256: z.string().regex(SHA256_HEX_PATTERN, 'sha256 must be 64 lowercase hex characters'),
  minVersion: semverSchema.optional(),
  createdAt: z.number().int().nonnegative(),
});
export type Manifest = z.infer<typeof manifestSchema>;
