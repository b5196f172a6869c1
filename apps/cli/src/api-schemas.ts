import { roleSchema } from '@outpost/protocol/claims';
import { z } from 'zod';

/**
 * The parts of the service's answers the CLI relies on (the OpenAPI document at
 * `/api/docs/openapi.json` has the whole shape). Loose: members added later pass through
 * and show up in `--json` output.
 */

const nullableString = z.string().nullable();

export const deviceSchema = z.looseObject({
  id: z.string(),
  kind: z.string(),
  name: nullableString,
  tags: z.record(z.string(), z.string()),
  gateway: nullableString,
  status: z.string(),
  policy: z.looseObject({ payloadSigning: z.string() }).optional(),
  connectivity: z.looseObject({
    state: z.string(),
    online: z.boolean(),
    lastSeen: nullableString,
    disconnectReason: nullableString.optional(),
  }),
  outbox: z
    .looseObject({
      pending: z.number(),
      bytes: z.number(),
      oldestS: z.number(),
      dropped: z.number(),
    })
    .nullable()
    .optional(),
  keys: z.array(z.looseObject({ kid: z.string(), alg: z.string(), addedAt: z.string() })),
  reportedAt: nullableString.optional(),
  desiredConfigVersion: z.number().optional(),
  revokedAt: nullableString.optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Device = z.infer<typeof deviceSchema>;

export const devicePageSchema = z.looseObject({
  items: z.array(deviceSchema),
  next: nullableString,
});
export type DevicePage = z.infer<typeof devicePageSchema>;

export const enrollmentCreatedSchema = z.looseObject({
  token: z.string(),
  jti: z.string(),
  deviceId: z.string(),
  kind: z.string(),
  gateway: nullableString,
  expiresAt: z.string(),
});
export type EnrollmentCreated = z.infer<typeof enrollmentCreatedSchema>;

/** PROTOCOL.md §2 step 3: what a device needs after enrolling. */
export const enrollReplySchema = z.looseObject({
  device: deviceSchema,
  kid: z.string(),
  endpoints: z.looseObject({
    http: z.string(),
    mqtt: z.looseObject({
      host: z.string(),
      port: z.number(),
      tlsPort: z.number().nullable(),
      websocket: z.string(),
    }),
  }),
  audience: z.string(),
  jwks: z.looseObject({ keys: z.array(z.record(z.string(), z.unknown())) }),
  releaseKeys: z.array(z.unknown()),
});
export type EnrollReply = z.infer<typeof enrollReplySchema>;

export const importResultSchema = z.looseObject({ imported: z.number() });

export const apiTokenSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  roles: z.array(roleSchema.or(z.string())),
  createdBy: z.string(),
  createdAt: z.number(),
  expiresAt: z.number().nullable(),
  revokedAt: z.number().nullable(),
  lastUsedAt: z.number().nullable(),
});
export type ApiToken = z.infer<typeof apiTokenSchema>;
export const issuedTokenSchema = apiTokenSchema.extend({ token: z.string() });
export const apiTokenListSchema = z.array(apiTokenSchema);

/** `import_invalid` problem extension members. */
export const importErrorsSchema = z.object({
  errors: z.array(
    z.looseObject({ line: z.number(), id: z.string().optional(), message: z.string() }),
  ),
  errorCount: z.number(),
});
export type ImportErrors = z.infer<typeof importErrorsSchema>;

export const alertRuleSchema = z.looseObject({
  id: z.string(),
  name: z.string(),
  kind: z.string(),
  enabled: z.boolean(),
  condition: z.string(),
  scope: z.looseObject({
    devices: z.array(z.string()).optional(),
    tags: z.record(z.string(), z.string()).optional(),
    gateway: z.string().optional(),
  }),
  severity: z.string(),
  channels: z.array(z.looseObject({ type: z.string(), url: z.string().optional() })),
});
export type AlertRule = z.infer<typeof alertRuleSchema>;
export const alertRuleListSchema = z.array(alertRuleSchema);
/** `POST /alert-rules`: the webhook signing secret is in this answer only. */
export const createdAlertRuleSchema = alertRuleSchema.extend({ webhookSecret: z.string() });

export const alertSchema = z.looseObject({
  id: z.string(),
  ruleId: z.string(),
  ruleName: nullableString,
  device: z.string(),
  severity: z.string(),
  state: z.string(),
  openedAt: z.string(),
  firedAt: nullableString,
  closedAt: nullableString,
  summary: z.string(),
  acknowledgedAt: nullableString,
  acknowledgedBy: nullableString,
});
export type Alert = z.infer<typeof alertSchema>;
export const alertPageSchema = z.looseObject({
  items: z.array(alertSchema),
  next: nullableString,
});
export type AlertPage = z.infer<typeof alertPageSchema>;
