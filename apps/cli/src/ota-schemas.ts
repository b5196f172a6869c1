import { z } from 'zod';

/**
 * The parts of the OTA answers (release keys, firmware, rollouts) the CLI relies on; loose,
 * like `api-schemas.ts`, so members added later pass through to `--json` output.
 */

const nullableString = z.string().nullable();

export const releaseKeySchema = z.looseObject({
  kid: z.string(),
  alg: z.string(),
  name: nullableString,
  createdAt: z.string(),
  revokedAt: nullableString,
});
export type ReleaseKey = z.infer<typeof releaseKeySchema>;
export const releaseKeyListSchema = z.array(releaseKeySchema);

export const firmwareSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  component: z.string(),
  version: z.string(),
  hardware: z.array(z.string()),
  size: z.number(),
  sha256: z.string(),
  minVersion: nullableString,
  kid: z.string(),
  uploadedAt: z.string(),
});
export type Firmware = z.infer<typeof firmwareSchema>;
export const firmwarePageSchema = z.looseObject({
  items: z.array(firmwareSchema),
  next: nullableString,
});

const countsSchema = z.looseObject({
  pending: z.number(),
  offered: z.number(),
  updating: z.number(),
  succeeded: z.number(),
  failed: z.number(),
  rolledBack: z.number(),
});
export type StateCounts = z.infer<typeof countsSchema>;

export const waveSchema = z.looseObject({
  index: z.number(),
  percent: z.number(),
  devices: z.number(),
  phase: z.string(),
  soakUntil: nullableString,
  counts: countsSchema,
});
export type Wave = z.infer<typeof waveSchema>;

export const rolloutDeviceSchema = z.looseObject({
  deviceId: z.string(),
  wave: z.number(),
  state: z.string(),
  reason: nullableString,
  detail: nullableString,
  version: nullableString,
  updatedAt: z.string(),
});
export type RolloutDevice = z.infer<typeof rolloutDeviceSchema>;

export const rolloutListItemSchema = z.looseObject({
  id: z.string(),
  firmwareId: z.string(),
  component: z.string(),
  version: z.string(),
  status: z.string(),
  reason: nullableString,
  currentWave: z.number(),
  plan: z.looseObject({ waves: z.array(z.number()) }),
  createdAt: z.string(),
  finishedAt: nullableString,
});
export type RolloutListItem = z.infer<typeof rolloutListItemSchema>;
export const rolloutPageSchema = z.looseObject({
  items: z.array(rolloutListItemSchema),
  next: nullableString,
});

export const rolloutProgressSchema = rolloutListItemSchema.extend({
  waves: z.array(waveSchema),
  totals: countsSchema.extend({ devices: z.number(), finished: z.number() }),
});
export type RolloutProgress = z.infer<typeof rolloutProgressSchema>;

export const rolloutSchema = rolloutProgressSchema.extend({
  devices: z.array(rolloutDeviceSchema),
});
export type Rollout = z.infer<typeof rolloutSchema>;

/** A `rollouts` event of `GET /api/v1/stream?types=rollouts`. */
export const rolloutStreamEventSchema = z.discriminatedUnion('kind', [
  z.looseObject({
    kind: z.literal('progress'),
    rolloutId: z.string(),
    rollout: rolloutProgressSchema,
  }),
  z.looseObject({ kind: z.literal('device'), rolloutId: z.string(), device: rolloutDeviceSchema }),
]);
