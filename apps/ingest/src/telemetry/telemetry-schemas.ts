import { parseDuration, parseInstant } from '@outpost/protocol/duration';
import { deviceIdSchema, metricNameSchema } from '@outpost/protocol/ids';
import { z } from 'zod';
import { AGGREGATE_FUNCTIONS } from './telemetry-store.js';

const instant = z
  .string()
  .max(40)
  .refine(
    (t) => parseInstant(t, 0) !== undefined,
    'expected now, -1h, an ISO date-time or epoch ms',
  );
const duration = z
  .string()
  .max(16)
  .refine((t) => (parseDuration(t) ?? 0) >= 1, 'expected a duration such as 10s, 1m, 1h');

export const telemetryQuerySchema = z.strictObject({
  metric: metricNameSchema,
  from: instant.default('-1h'),
  to: instant.default('now'),
  every: duration.optional(),
  fn: z.enum(AGGREGATE_FUNCTIONS).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});
export type TelemetryQuery = z.output<typeof telemetryQuerySchema>;

export const seriesSchema = z.object({
  device: z.string(),
  metric: z.string(),
  from: z.iso.datetime(),
  to: z.iso.datetime(),
  every: z.string().nullable(),
  fn: z.string().nullable(),
  points: z.array(
    z.object({
      time: z.iso.datetime(),
      value: z.union([z.number(), z.string(), z.boolean(), z.null()]),
    }),
  ),
});

export const latestSchema = z.object({
  device: z.string(),
  metrics: z.array(
    z.object({
      metric: z.string(),
      time: z.iso.datetime(),
      value: z.union([z.number(), z.string(), z.boolean()]),
      unit: z.string().optional(),
    }),
  ),
});

export const acceptResultSchema = z.object({
  outcome: z.enum(['accepted', 'duplicate']),
  readings: z.number().int(),
  boot: z.string().optional(),
  seq: z.tuple([z.number(), z.number()]).optional(),
});

const oneOrMany = <T extends z.ZodType>(s: T, max: number) =>
  z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(s).max(max));

export const streamQuerySchema = z.strictObject({
  device: oneOrMany(deviceIdSchema, 100).optional(),
  metric: oneOrMany(metricNameSchema, 100).optional(),
  /** Which kinds of events to send; all by default. */
  types: oneOrMany(z.enum(['readings', 'status']), 2).optional(),
});
export type StreamQuery = z.output<typeof streamQuerySchema>;
