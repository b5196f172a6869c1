import { parseDuration } from '@outpost/protocol/duration';
import { ALERT_SEVERITIES } from '@outpost/protocol/events';
import { deviceIdSchema, metricNameSchema } from '@outpost/protocol/ids';
import { nameSchema, tagsSchema } from '@outpost/protocol/tags';
import { z } from 'zod';
import type { AlertCursor, AlertRecord, DeliveryRecord } from './alert-store.js';
import { ALERT_EVENTS } from './notification.js';
import {
  type Channel,
  describeCondition,
  durationText,
  type RuleRecord,
  type RuleSpec,
  type Scope,
} from './rule.js';

/** HTTP shapes of alert rules, alerts and dead letters. Parsed once, here. */

const DAY_MS = 86_400_000;

/** `30s`, `5m`, `1500ms`, or a number of seconds; to milliseconds within [min, max]. */
const duration = (minMs: number, maxMs: number) =>
  z.union([z.string().max(32), z.number().nonnegative()]).transform((value, ctx) => {
    const ms = typeof value === 'number' ? Math.round(value * 1000) : parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a duration such as 30s, 5m or 2h' });
      return z.NEVER;
    }
    if (ms < minMs || ms > maxMs) {
      ctx.addIssue({
        code: 'custom',
        message: `must be between ${durationText(minMs)} and ${durationText(maxMs)}`,
      });
      return z.NEVER;
    }
    return ms;
  });

const limit = z.number().refine(Number.isFinite, 'must be a finite number');

export const webhookUrlSchema = z
  .url({ protocol: /^https?$/, message: 'webhooks are http:// or https:// URLs' })
  .max(2048)
  .refine(
    (u) => !/^https?:\/\/[^/?#]*@/i.test(u),
    'no credentials in the URL: requests are signed',
  );

export const channelSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('webhook'), url: webhookUrlSchema }),
  z.strictObject({ type: z.literal('log') }),
]);

export const scopeSchema = z.strictObject({
  devices: z.array(deviceIdSchema).min(1).max(1000).optional(),
  tags: tagsSchema.optional(),
  gateway: deviceIdSchema.optional(),
});

const common = {
  name: nameSchema.optional(),
  enabled: z.boolean().default(true),
  scope: scopeSchema.default({}),
  severity: z.enum(ALERT_SEVERITIES).default('warning'),
  /** Paging channels; every transition also goes to the SSE stream. Default: the log. */
  channels: z
    .array(channelSchema)
    .max(10)
    .default([{ type: 'log' }]),
};

const flapSchema = z.strictObject({
  /** Fires within `window` that make an alert flapping. */
  fires: z.number().int().min(2).max(100),
  window: duration(1000, DAY_MS),
});

const thresholdInput = z.strictObject({
  kind: z.literal('threshold'),
  ...common,
  metric: metricNameSchema,
  above: limit.optional(),
  below: limit.optional(),
  clearBelow: limit.optional(),
  clearAbove: limit.optional(),
  for: duration(0, 7 * DAY_MS).default(0),
  clearFor: duration(0, 7 * DAY_MS).default(0),
  /** Compare the change per this duration instead of the value. */
  rate: duration(1000, DAY_MS).optional(),
  /** PROTOCOL.md §5 `bf`: `record` (default) updates state without paging; `page` pages. */
  backfill: z.enum(['record', 'page']).default('record'),
  /** Flap suppression; null turns it off. */
  // A default is an output value in zod 4: the window is already in milliseconds.
  flap: flapSchema.nullable().default({ fires: 3, window: 15 * 60_000 }),
});

const offlineInput = z.strictObject({
  kind: z.literal('offline'),
  ...common,
  /** No reading or state from a device in scope for this long. */
  after: duration(10_000, 30 * DAY_MS),
});

/** A rule as written. `kind` defaults to `threshold`. */
export const ruleInputSchema = z
  .preprocess(
    (v) =>
      v && typeof v === 'object' && !Array.isArray(v) && !('kind' in v)
        ? { kind: 'threshold', ...v }
        : v,
    z.discriminatedUnion('kind', [thresholdInput, offlineInput]),
  )
  .transform((r): { name: string | undefined; enabled: boolean; spec: RuleSpec } => {
    const scope: Scope = {
      ...(r.scope.devices ? { devices: [...new Set(r.scope.devices)] } : {}),
      ...(r.scope.tags && Object.keys(r.scope.tags).length > 0 ? { tags: r.scope.tags } : {}),
      ...(r.scope.gateway ? { gateway: r.scope.gateway } : {}),
    };
    const base = { scope, severity: r.severity, channels: r.channels as Channel[] };
    if (r.kind === 'offline') {
      return {
        name: r.name,
        enabled: r.enabled,
        spec: { kind: 'offline', afterMs: r.after, ...base },
      };
    }
    return {
      name: r.name,
      enabled: r.enabled,
      spec: {
        kind: 'threshold',
        metric: r.metric,
        ...(r.above !== undefined ? { above: r.above } : {}),
        ...(r.below !== undefined ? { below: r.below } : {}),
        ...(r.clearBelow !== undefined ? { clearBelow: r.clearBelow } : {}),
        ...(r.clearAbove !== undefined ? { clearAbove: r.clearAbove } : {}),
        forMs: r.for,
        clearForMs: r.clearFor,
        ...(r.rate !== undefined ? { rateMs: r.rate } : {}),
        ...base,
        backfill: r.backfill,
        flap: r.flap ? { fires: r.flap.fires, windowMs: r.flap.window } : null,
      },
    };
  });
export type RuleInput = z.output<typeof ruleInputSchema>;

const nullableLimit = limit.nullable().optional();
const anyDuration = z.union([z.string().max(32), z.number().nonnegative()]);

/**
 * A change to a rule: any field of its kind; `null` removes an optional one (`flap: null`
 * turns flap suppression off). The merged rule is validated whole.
 */
export const patchRuleSchema = z
  .strictObject({
    name: nameSchema.optional(),
    enabled: z.boolean().optional(),
    metric: metricNameSchema.optional(),
    above: nullableLimit,
    below: nullableLimit,
    clearBelow: nullableLimit,
    clearAbove: nullableLimit,
    for: anyDuration.optional(),
    clearFor: anyDuration.optional(),
    rate: anyDuration.nullable().optional(),
    after: anyDuration.optional(),
    scope: scopeSchema.optional(),
    severity: z.enum(ALERT_SEVERITIES).optional(),
    channels: z.array(channelSchema).max(10).optional(),
    backfill: z.enum(['record', 'page']).optional(),
    flap: z.strictObject({ fires: z.number().int(), window: anyDuration }).nullable().optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'nothing to change');
export type PatchRule = z.output<typeof patchRuleSchema>;

/** The rule as the API shows it and accepts it back: durations as text, no secret. */
export function ruleInputOf(spec: RuleSpec): Record<string, unknown> {
  const base = {
    scope: spec.scope,
    severity: spec.severity,
    channels: spec.channels,
  };
  if (spec.kind === 'offline')
    return { kind: 'offline', after: durationText(spec.afterMs), ...base };
  return {
    kind: 'threshold',
    metric: spec.metric,
    ...(spec.above !== undefined ? { above: spec.above } : {}),
    ...(spec.below !== undefined ? { below: spec.below } : {}),
    ...(spec.clearBelow !== undefined ? { clearBelow: spec.clearBelow } : {}),
    ...(spec.clearAbove !== undefined ? { clearAbove: spec.clearAbove } : {}),
    for: durationText(spec.forMs),
    clearFor: durationText(spec.clearForMs),
    ...(spec.rateMs !== undefined ? { rate: durationText(spec.rateMs) } : {}),
    ...base,
    backfill: spec.backfill,
    flap: spec.flap ? { fires: spec.flap.fires, window: durationText(spec.flap.windowMs) } : null,
  };
}

/** Applies a patch to a rule's input form; `null` removes a field (except `flap`). */
export function mergePatch(
  current: Record<string, unknown>,
  patch: PatchRule,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (value === null && key !== 'flap') delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const ruleViewSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  kind: z.enum(['threshold', 'offline']),
  enabled: z.boolean(),
  /** The condition in one line, e.g. `temperature > 90 for 30s, clears < 85`. */
  condition: z.string(),
  metric: z.string().optional(),
  above: z.number().optional(),
  below: z.number().optional(),
  clearBelow: z.number().optional(),
  clearAbove: z.number().optional(),
  for: z.string().optional(),
  clearFor: z.string().optional(),
  rate: z.string().optional(),
  after: z.string().optional(),
  scope: z.object({
    devices: z.array(z.string()).optional(),
    tags: z.record(z.string(), z.string()).optional(),
    gateway: z.string().optional(),
  }),
  severity: z.enum(ALERT_SEVERITIES),
  channels: z.array(z.object({ type: z.enum(['webhook', 'log']), url: z.string().optional() })),
  backfill: z.enum(['record', 'page']).optional(),
  flap: z.object({ fires: z.number(), window: z.string() }).nullable().optional(),
  createdBy: z.string(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export type RuleView = z.infer<typeof ruleViewSchema>;

export const createdRuleSchema = ruleViewSchema.extend({
  /** HMAC-SHA256 key of this rule's webhook signatures. Shown only now. */
  webhookSecret: z.string(),
});
export const ruleSecretSchema = z.object({ id: z.string(), webhookSecret: z.string() });

export function ruleView(r: RuleRecord): RuleView {
  return {
    id: r.id,
    name: r.name,
    ...ruleInputOf(r.spec),
    kind: r.spec.kind,
    enabled: r.enabled,
    condition: describeCondition(r.spec),
    createdBy: r.createdBy,
    createdAt: iso(r.createdAt)!,
    updatedAt: iso(r.updatedAt)!,
  } as RuleView;
}

export const ALERT_STATES = ['pending', 'firing', 'resolved', 'cancelled'] as const;

export const alertViewSchema = z.object({
  id: z.string(),
  ruleId: z.string(),
  ruleName: z.string().nullable(),
  device: z.string(),
  metric: z.string().nullable(),
  severity: z.enum(ALERT_SEVERITIES),
  state: z.enum(ALERT_STATES),
  openedAt: z.iso.datetime(),
  firedAt: z.iso.datetime().nullable(),
  /** When it resolved or was cancelled. */
  closedAt: z.iso.datetime().nullable(),
  /** Firing time so far, or in all once resolved. */
  firingMs: z.number().nullable(),
  value: z.number().nullable(),
  peak: z.number().nullable(),
  paged: z.boolean(),
  /** Why it fired without paging: `backfilled` data (PROTOCOL.md §5). */
  quiet: z.enum(['backfilled']).nullable(),
  flapping: z.boolean(),
  flaps: z.number().int(),
  /** The explanation of its latest transition. */
  summary: z.string(),
  acknowledgedAt: z.iso.datetime().nullable(),
  acknowledgedBy: z.string().nullable(),
  updatedAt: z.iso.datetime(),
});
export type AlertView = z.infer<typeof alertViewSchema>;

export function alertView(a: AlertRecord, now: number): AlertView {
  return {
    id: a.id,
    ruleId: a.ruleId,
    ruleName: a.ruleName,
    device: a.device,
    metric: a.metric,
    severity: a.severity,
    state: a.status,
    openedAt: iso(a.openedAt)!,
    firedAt: iso(a.firedAt),
    closedAt: iso(a.closedAt),
    firingMs: a.firedAt === null ? null : Math.max(0, (a.closedAt ?? now) - a.firedAt),
    value: a.value,
    peak: a.peak,
    paged: a.paged,
    quiet: a.quiet,
    flapping: a.flapping,
    flaps: a.flaps,
    summary: a.summary,
    acknowledgedAt: iso(a.acknowledgedAt),
    acknowledgedBy: a.acknowledgedBy,
    updatedAt: iso(a.updatedAt)!,
  };
}

export const alertPageSchema = z.object({
  items: z.array(alertViewSchema),
  /** Pass as `after` for the next page; null at the end. */
  next: z.string().nullable(),
});

export function encodeCursor(c: AlertCursor | null): string | null {
  return c ? Buffer.from(JSON.stringify([c.openedAt, c.id])).toString('base64url') : null;
}

const cursorSchema = z
  .string()
  .max(200)
  .transform((s, ctx): AlertCursor => {
    try {
      const [openedAt, id] = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as unknown[];
      if (typeof openedAt === 'number' && typeof id === 'string') return { openedAt, id };
    } catch {
      // reported below
    }
    ctx.addIssue({ code: 'custom', message: 'not a cursor from a previous page' });
    return z.NEVER;
  });

const oneOrMany = <T extends z.ZodType>(s: T, max: number) =>
  z.preprocess((v) => (typeof v === 'string' ? v.split(',') : v), z.array(s).max(max));

export const alertIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'ids match ^[A-Za-z0-9_-]{1,64}$');

export const listAlertsQuerySchema = z.strictObject({
  /** Repeatable or comma-separated; `open` means pending and firing. */
  state: oneOrMany(z.enum([...ALERT_STATES, 'open']), 5).optional(),
  rule: alertIdSchema.optional(),
  device: deviceIdSchema.optional(),
  severity: z.enum(ALERT_SEVERITIES).optional(),
  acknowledged: z.enum(['true', 'false']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  after: cursorSchema.optional(),
});
export type ListAlertsQuery = z.output<typeof listAlertsQuerySchema>;

export const deadLetterViewSchema = z.object({
  id: z.string(),
  alertId: z.string(),
  ruleId: z.string(),
  device: z.string(),
  event: z.enum(ALERT_EVENTS),
  url: z.string(),
  attempts: z.number().int(),
  lastError: z.string().nullable(),
  lastStatus: z.number().int().nullable(),
  createdAt: z.iso.datetime(),
  deadAt: z.iso.datetime().nullable(),
  state: z.enum(['queued', 'delivered', 'dead']),
});

export function deadLetterView(d: DeliveryRecord): z.infer<typeof deadLetterViewSchema> {
  return {
    id: d.id,
    alertId: d.alertId,
    ruleId: d.ruleId,
    device: d.device,
    event: d.event as (typeof ALERT_EVENTS)[number],
    url: d.url,
    attempts: d.attempts,
    lastError: d.lastError,
    lastStatus: d.lastStatus,
    createdAt: iso(d.createdAt)!,
    deadAt: iso(d.deadAt),
    state: d.state,
  };
}

export const deadLetterPageSchema = z.object({
  items: z.array(deadLetterViewSchema),
  next: z.string().nullable(),
});

export const deadLettersQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  after: alertIdSchema.optional(),
});
