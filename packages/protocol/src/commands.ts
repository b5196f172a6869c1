import { z } from 'zod';
import { compactJwsSchema } from './claims.js';
import { deviceIdSchema } from './ids.js';
import { publicJwkSchema } from './keys.js';
import { MAX_RELEASE_KEYS, MAX_TEXT_LENGTH, MAX_URL_LENGTH } from './limits.js';
import { componentNameSchema, rolloutIdSchema, semverSchema } from './ota.js';
import { bootIdSchema, seqRangeSchema, telemetryRejectionReasonSchema } from './telemetry.js';
import { textSchema } from './text.js';

/**
 * PROTOCOL.md §8: fields of every command payload. `device` names the target: the
 * signature covers it, so a command signed for one device cannot be replayed to another
 * ("devices ignore commands whose ... target device does not check out").
 * Unknown fields are dropped so a device keeps working when the service adds some.
 */
const commandFields = {
  v: z.literal(1),
  id: z.uuid(),
  exp: z.number().int().nonnegative(),
  device: deviceIdSchema,
};

/** Offer of a firmware update; `manifest` is a compact JWS signed by a release key. */
export const otaOfferCommandSchema = z.object({
  ...commandFields,
  type: z.literal('ota.offer'),
  rolloutId: rolloutIdSchema,
  component: componentNameSchema,
  manifest: compactJwsSchema,
  url: z.url({ protocol: /^https?$/ }).max(MAX_URL_LENGTH),
  /** When set, a manifest of exactly this version installs even if it is not newer. */
  rollbackTarget: semverSchema.optional(),
});

/** The agent's remote-configurable part, versioned. Its shape belongs to the agent. */
export const configDesiredCommandSchema = z.object({
  ...commandFields,
  type: z.literal('config.desired'),
  version: z.number().int().nonnegative(),
  config: z.record(z.string().max(128), z.unknown()),
});

/** PROTOCOL.md §9: a batch refused for good; the agent quarantines it. */
export const telemetryRejectedCommandSchema = z.object({
  ...commandFields,
  type: z.literal('telemetry.rejected'),
  boot: bootIdSchema,
  seq: seqRangeSchema,
  reason: telemetryRejectionReasonSchema,
  detail: textSchema(MAX_TEXT_LENGTH).optional(),
});

/** The current trusted release keys; each carries its `kid` so manifests can name it. */
export const keysReleaseCommandSchema = z.object({
  ...commandFields,
  type: z.literal('keys.release'),
  keys: z
    .array(
      publicJwkSchema.refine((jwk) => jwk.kid !== undefined, {
        message: 'release keys carry their kid',
        path: ['kid'],
      }),
    )
    .min(1)
    .max(MAX_RELEASE_KEYS),
});

export const pingCommandSchema = z.object({ ...commandFields, type: z.literal('ping') });
export const rebootCommandSchema = z.object({ ...commandFields, type: z.literal('reboot') });

export const COMMAND_TYPES = [
  'ota.offer',
  'config.desired',
  'telemetry.rejected',
  'keys.release',
  'ping',
  'reboot',
] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];

/** PROTOCOL.md §8: the payload of a signed command on `v1/devices/{id}/commands`. */
export const commandSchema = z.discriminatedUnion('type', [
  otaOfferCommandSchema,
  configDesiredCommandSchema,
  telemetryRejectedCommandSchema,
  keysReleaseCommandSchema,
  pingCommandSchema,
  rebootCommandSchema,
]);
export type Command = z.infer<typeof commandSchema>;
export type CommandOf<T extends CommandType> = Extract<Command, { type: T }>;
