import { deviceIdSchema, deviceKindSchema } from '@outpost/protocol/ids';
import { MAX_TAGS } from '@outpost/protocol/limits';
import { nameSchema, tagPairSchema, tagsSchema } from '@outpost/protocol/tags';
import { z } from 'zod';

/** HTTP request and response shapes of the device registry, built on the protocol schemas. */

export const deviceNameSchema = nameSchema;

export const policySchema = z.strictObject({
  payloadSigning: z.enum(['required', 'optional']),
});

/** A query parameter given once (a string) or repeated (an array). */
const oneOrMany = <T extends z.ZodType>(s: T) =>
  z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(s).max(MAX_TAGS));

export const listDevicesQuerySchema = z.strictObject({
  tag: oneOrMany(tagPairSchema)
    .optional()
    .transform((pairs) => (pairs ? Object.fromEntries(pairs) : undefined)),
  kind: deviceKindSchema.optional(),
  gateway: deviceIdSchema.optional(),
  status: z.enum(['pending', 'active', 'revoked', 'online', 'offline', 'buffering']).optional(),
  q: z.string().min(1).max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  after: deviceIdSchema.optional(),
});

export const createEnrollmentSchema = z.strictObject({
  deviceId: deviceIdSchema,
  kind: deviceKindSchema.default('device'),
  gateway: deviceIdSchema.optional(),
  name: deviceNameSchema.optional(),
  tags: tagsSchema.optional(),
  /** Token lifetime; defaults to INGEST_ENROLLMENT_TTL_S (24 h). At most 30 days. */
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 24 * 3600)
    .optional(),
});
export type CreateEnrollment = z.infer<typeof createEnrollmentSchema>;

export const enrollmentCreatedSchema = z.object({
  token: z.string(),
  jti: z.string(),
  deviceId: deviceIdSchema,
  kind: deviceKindSchema,
  gateway: deviceIdSchema.nullable(),
  expiresAt: z.iso.datetime(),
});

export const patchDeviceSchema = z
  .strictObject({
    name: deviceNameSchema.nullable().optional(),
    tags: tagsSchema.optional(),
    policy: policySchema.optional(),
    desiredConfig: z
      .record(z.string().max(64), z.unknown())
      .refine((c) => JSON.stringify(c).length <= 64 * 1024, 'desired config is at most 64 KiB')
      .optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'nothing to change');
export type PatchDevice = z.infer<typeof patchDeviceSchema>;

export const deviceIdParamSchema = deviceIdSchema;

export const deviceViewSchema = z.object({
  id: z.string(),
  kind: deviceKindSchema,
  name: z.string().nullable(),
  tags: z.record(z.string(), z.string()),
  gateway: z.string().nullable(),
  policy: policySchema,
  status: z.enum(['pending', 'active', 'revoked']),
  connectivity: z.object({
    state: z.enum(['online', 'offline', 'buffering', 'never_connected', 'revoked']),
    online: z.boolean(),
    lastSeen: z.iso.datetime().nullable(),
    disconnectReason: z
      .string()
      .nullable()
      .describe(
        'Why the last session ended (apps/ingest/README.md lists every reason), e.g. client_disconnect, keepalive_timeout, server_restart (the ingest was killed and started again), replica_lost (the replica holding the session died for good)',
      ),
  }),
  outbox: z
    .object({ pending: z.number(), bytes: z.number(), oldestS: z.number(), dropped: z.number() })
    .nullable(),
  keys: z.array(z.object({ kid: z.string(), alg: z.string(), addedAt: z.iso.datetime() })),
  reportedState: z.unknown().nullable(),
  reportedAt: z.iso.datetime().nullable(),
  desiredConfig: z.unknown().nullable(),
  desiredConfigVersion: z.number().int(),
  revokedAt: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export type DeviceView = z.infer<typeof deviceViewSchema>;

export const devicePageSchema = z.object({
  items: z.array(deviceViewSchema),
  next: z.string().nullable(),
});

export const importResultSchema = z.object({ imported: z.number().int() });
