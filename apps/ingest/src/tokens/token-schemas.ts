import { roleSchema } from '@outpost/protocol/claims';
import { z } from 'zod';

export const createTokenSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^\p{Cc}]*$/u),
  roles: z.array(roleSchema).min(1).max(5),
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(5 * 365 * 24 * 3600)
    .optional(),
});
export type CreateToken = z.infer<typeof createTokenSchema>;

export const tokenViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  roles: z.array(roleSchema),
  createdBy: z.string(),
  createdAt: z.number().int(),
  expiresAt: z.number().int().nullable(),
  revokedAt: z.number().int().nullable(),
  lastUsedAt: z.number().int().nullable(),
});
export const issuedTokenSchema = tokenViewSchema.extend({ token: z.string() });
export const tokenIdSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_-]+$/);
