import { z } from 'zod';
import { deviceIdSchema, deviceKindSchema } from './ids.js';
import { MAX_TOKEN_BYTES } from './limits.js';

/** PROTOCOL.md §1: the only signature algorithms Outpost accepts. */
export const SIGNING_ALGORITHMS = ['EdDSA', 'ES256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** Default `aud` of device JWTs (INGEST_AUDIENCE). */
export const DEFAULT_AUDIENCE = 'outpost';

/**
 * `typ` header per token kind (RFC 8725 §3.11 explicit typing), so a token of one kind can
 * never be accepted as another. Device JWTs use plain `JWT` as PROTOCOL.md §3 fixes it.
 */
export const TOKEN_TYPES = {
  deviceJwt: 'JWT',
  enrollment: 'outpost-enroll+jwt',
  api: 'outpost-api+jwt',
  enrollmentProof: 'outpost-proof+jwt',
  batch: 'outpost-batch+jws',
  manifest: 'outpost-manifest+jws',
  command: 'outpost-command+jws',
} as const;
export type TokenKind = keyof typeof TOKEN_TYPES;

const epochSeconds = z.number().int().nonnegative();
const jti = z.string().min(8).max(128);

/** PROTOCOL.md §3: claims of the device JWT used as MQTT password and HTTP bearer. */
export const deviceJwtClaimsSchema = z.object({
  iss: deviceIdSchema,
  sub: deviceIdSchema,
  aud: z.union([z.string().max(256), z.array(z.string().max(256)).max(8)]),
  iat: epochSeconds,
  exp: epochSeconds,
  nbf: epochSeconds.optional(),
  jti,
});
export type DeviceJwtClaims = z.infer<typeof deviceJwtClaimsSchema>;

/** PROTOCOL.md §2 step 1: the single-use enrollment token issued by the service. */
export const enrollmentTokenClaimsSchema = z.object({
  iss: z.string().max(256),
  sub: deviceIdSchema,
  kind: deviceKindSchema,
  gw: deviceIdSchema.optional(),
  iat: epochSeconds,
  exp: epochSeconds,
  jti,
});
export type EnrollmentTokenClaims = z.infer<typeof enrollmentTokenClaimsSchema>;

/** PROTOCOL.md §2 step 2: proof of possession signed with the new device key. */
export const enrollmentProofClaimsSchema = z.object({
  jti,
  sub: deviceIdSchema,
  iat: epochSeconds,
});
export type EnrollmentProofClaims = z.infer<typeof enrollmentProofClaimsSchema>;

/** SURFACES.md roles. */
export const ROLES = ['viewer', 'operator', 'technician', 'firmware', 'admin'] as const;
export type Role = (typeof ROLES)[number];
export const roleSchema = z.enum(ROLES);

/** SURFACES.md: API tokens for people and scripts. */
export const apiTokenClaimsSchema = z.object({
  iss: z.string().max(256),
  sub: z.string().min(1).max(128),
  roles: z.array(roleSchema).min(1).max(ROLES.length),
  iat: epochSeconds,
  exp: epochSeconds.optional(),
  jti,
});
export type ApiTokenClaims = z.infer<typeof apiTokenClaimsSchema>;

/** A compact JWS/JWT as it arrives on the wire, bounded before any parsing. */
export const compactJwsSchema = z
  .string()
  .max(MAX_TOKEN_BYTES)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/, 'not a compact JWS');
