import { deviceIdSchema } from '@outpost/protocol/ids';
import { publicJwkSchema } from '@outpost/protocol/keys';
import { rolloutIdSchema } from '@outpost/protocol/ota';
import { nameSchema, tagsSchema } from '@outpost/protocol/tags';
import { z } from 'zod';
import { DEVICE_STATES, ROLLOUT_STATUSES } from './rollout.js';

/** HTTP request and response shapes of release keys, firmware and rollouts. */

/** A query parameter given once (a string) or repeated (an array). */
const oneOrMany = <T extends z.ZodType>(s: T, max: number) =>
  z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(s).max(max));

const iso = z.iso.datetime();
const isoOrNull = iso.nullable();

/** Ids the service makes (UUIDs); bounded and path-safe. */
export const otaIdSchema = rolloutIdSchema;
export const kidSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a kid is a JWK thumbprint');

export const registerReleaseKeySchema = z.strictObject({
  /** The public JWK (Ed25519 or P-256) of a release key, as `outpost keys generate` writes it. */
  publicKey: publicJwkSchema,
  name: nameSchema.optional(),
});
export type RegisterReleaseKey = z.output<typeof registerReleaseKeySchema>;

export const releaseKeyViewSchema = z.object({
  kid: z.string(),
  alg: z.string(),
  name: z.string().nullable(),
  publicKey: z.record(z.string(), z.unknown()),
  createdBy: z.string(),
  createdAt: iso,
  revokedAt: isoOrNull,
  revokedBy: z.string().nullable(),
});

/** Header carrying the signed manifest of an upload (the body is the artifact itself). */
export const MANIFEST_HEADER = 'x-outpost-manifest';

export const firmwareViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  component: z.string(),
  version: z.string(),
  hardware: z.array(z.string()),
  size: z.number().int(),
  sha256: z.string(),
  minVersion: z.string().nullable(),
  /** The manifest's own `createdAt`. */
  createdAt: iso,
  kid: z.string(),
  manifest: z.string(),
  uploadedBy: z.string(),
  uploadedAt: iso,
});

export const listFirmwareQuerySchema = z.strictObject({
  component: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  after: otaIdSchema.optional(),
});
export type ListFirmwareQuery = z.output<typeof listFirmwareQuerySchema>;

export const firmwarePageSchema = z.object({
  items: z.array(firmwareViewSchema),
  next: z.string().nullable(),
});

const percent = z.number().gt(0).max(100);

export const rolloutTargetSchema = z
  .strictObject({
    tags: tagsSchema.optional(),
    devices: z.array(deviceIdSchema).max(10_000).optional(),
    gateways: z.array(deviceIdSchema).max(1000).optional(),
  })
  .refine(
    (t) =>
      Object.keys(t.tags ?? {}).length > 0 ||
      (t.devices?.length ?? 0) > 0 ||
      (t.gateways?.length ?? 0) > 0,
    'name at least one of tags, devices or gateways',
  );

export const createRolloutSchema = z.strictObject({
  firmwareId: otaIdSchema,
  target: rolloutTargetSchema,
  /** Cumulative percentages of the targets, e.g. [5, 25, 100]. */
  waves: z
    .array(percent)
    .min(1)
    .max(20)
    .refine((w) => w.every((p, i) => i === 0 || p > w[i - 1]!), 'waves must be ascending')
    .refine((w) => w.at(-1) === 100, 'the last wave must be 100'),
  /** How long each finished wave is watched before the next starts. */
  soakSeconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 86_400)
    .default(600),
  /** Abort when failed / finished devices exceeds this. */
  abortFailureRate: z.number().min(0).max(1).default(0.1),
  /** …once this many devices (or all, if fewer) have finished. */
  minDevices: z.number().int().min(1).max(1_000_000).default(5),
  offerTimeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(30 * 86_400)
    .optional(),
  updateTimeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(30 * 86_400)
    .optional(),
  /** Offer the firmware as a rollback target: devices install it even though it is older. */
  rollback: z.boolean().default(false),
});
export type CreateRollout = z.output<typeof createRolloutSchema>;

export const listRolloutsQuerySchema = z.strictObject({
  status: oneOrMany(z.enum(ROLLOUT_STATUSES), 5).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  after: otaIdSchema.optional(),
});
export type ListRolloutsQuery = z.output<typeof listRolloutsQuerySchema>;

export const rolloutQuerySchema = z.strictObject({
  /** Only list devices in these states (all by default). */
  state: oneOrMany(z.enum(DEVICE_STATES), DEVICE_STATES.length).optional(),
});
export type RolloutQuery = z.output<typeof rolloutQuerySchema>;

const countsSchema = z.object({
  pending: z.number().int(),
  offered: z.number().int(),
  updating: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  rolledBack: z.number().int(),
});

export const waveViewSchema = z.object({
  index: z.number().int(),
  percent: z.number(),
  devices: z.number().int(),
  through: z.number().int(),
  phase: z.enum(['pending', 'active', 'soaking', 'done']),
  startedAt: isoOrNull,
  completedAt: isoOrNull,
  soakUntil: isoOrNull,
  counts: countsSchema,
});

export const rolloutDeviceViewSchema = z.object({
  deviceId: z.string(),
  position: z.number().int(),
  wave: z.number().int(),
  state: z.enum(DEVICE_STATES),
  reason: z.string().nullable(),
  detail: z.string().nullable(),
  version: z.string().nullable(),
  offeredAt: isoOrNull,
  updatedAt: iso,
});

const rolloutFields = {
  id: z.string(),
  firmwareId: z.string(),
  component: z.string(),
  version: z.string(),
  rollbackTarget: z.string().nullable(),
  target: z.object({
    tags: z.record(z.string(), z.string()).optional(),
    devices: z.array(z.string()).optional(),
    gateways: z.array(z.string()).optional(),
  }),
  plan: z.object({
    waves: z.array(z.number()),
    soakSeconds: z.number(),
    abortFailureRate: z.number(),
    minDevices: z.number().int(),
    offerTimeoutSeconds: z.number(),
    updateTimeoutSeconds: z.number(),
  }),
  status: z.enum(ROLLOUT_STATUSES),
  reason: z.string().nullable(),
  currentWave: z.number().int(),
  createdBy: z.string(),
  createdAt: iso,
  updatedAt: iso,
  finishedAt: isoOrNull,
};

/** A rollout as listed: no per-device data. */
export const rolloutListItemSchema = z.object(rolloutFields);

/** A rollout with progress per wave and in total. */
export const rolloutProgressSchema = z.object({
  ...rolloutFields,
  waves: z.array(waveViewSchema),
  totals: countsSchema.extend({
    devices: z.number().int(),
    finished: z.number().int(),
    failureRate: z.number(),
  }),
});

export const rolloutDetailSchema = rolloutProgressSchema.extend({
  devices: z.array(rolloutDeviceViewSchema),
});

export const rolloutPageSchema = z.object({
  items: z.array(rolloutListItemSchema),
  next: z.string().nullable(),
});

export type RolloutProgressView = z.infer<typeof rolloutProgressSchema>;
export type RolloutDeviceView = z.infer<typeof rolloutDeviceViewSchema>;

/** What the `rollouts` stream event carries (`GET /stream?types=rollouts`). */
export type RolloutStreamEvent =
  | { kind: 'progress'; rolloutId: string; rollout: RolloutProgressView }
  | { kind: 'device'; rolloutId: string; device: RolloutDeviceView };
