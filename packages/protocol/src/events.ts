import { z } from 'zod';
import { MAX_TEXT_LENGTH } from './limits.js';
import {
  componentNameSchema,
  OTA_TERMINAL_STATES,
  otaStateSchema,
  rolloutIdSchema,
  semverSchema,
} from './ota.js';
import { textSchema } from './text.js';

const text = textSchema(MAX_TEXT_LENGTH);

/** PROTOCOL.md §7: every event has `v`, `type` and `at` (epoch seconds, fractions allowed). */
const eventFields = {
  v: z.literal(1),
  at: z.number().nonnegative(),
};

/** PROTOCOL.md §7, §8: a step of an OTA update on the device. */
export const otaProgressEventSchema = z.object({
  ...eventFields,
  type: z.literal('ota.progress'),
  rolloutId: rolloutIdSchema,
  component: componentNameSchema,
  state: otaStateSchema,
  detail: text.optional(),
});

/** PROTOCOL.md §8: how an OTA update ended; `failed` and `rolled_back` carry a reason. */
export const otaResultEventSchema = z
  .object({
    ...eventFields,
    type: z.literal('ota.result'),
    rolloutId: rolloutIdSchema,
    component: componentNameSchema,
    state: z.enum(OTA_TERMINAL_STATES),
    /** The version the component runs now. */
    version: semverSchema.optional(),
    reason: textSchema(MAX_TEXT_LENGTH, 1).optional(),
  })
  .refine((event) => event.state === 'succeeded' || event.reason !== undefined, {
    message: 'failed and rolled_back results carry a reason',
    path: ['reason'],
  });

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A log line the device wants an operator to see. */
export const logEventSchema = z.object({
  ...eventFields,
  type: z.literal('log'),
  level: z.enum(LOG_LEVELS),
  message: textSchema(MAX_TEXT_LENGTH, 1),
  source: textSchema(64, 1).optional(),
});

export const ALERT_SEVERITIES = ['info', 'warning', 'critical'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

/** A condition the device itself detected (a port gone missing, a full disk). */
export const alertEventSchema = z.object({
  ...eventFields,
  type: z.literal('alert'),
  code: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'code must match ^[a-z0-9][a-z0-9_.-]{0,63}$'),
  severity: z.enum(ALERT_SEVERITIES),
  message: text.optional(),
});

export const EVENT_TYPES = ['ota.progress', 'ota.result', 'log', 'alert'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** PROTOCOL.md §7: payload on `v1/devices/{id}/events`. */
export const deviceEventSchema = z.discriminatedUnion('type', [
  otaProgressEventSchema,
  otaResultEventSchema,
  logEventSchema,
  alertEventSchema,
]);
export type DeviceEvent = z.infer<typeof deviceEventSchema>;
export type DeviceEventOf<T extends EventType> = Extract<DeviceEvent, { type: T }>;
