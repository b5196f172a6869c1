import { z } from 'zod';

/**
 * 32 bytes in base64url without padding: 43 characters, the last one carrying 2 zero
 * bits, so each key has exactly one accepted spelling.
 */
const BASE64URL_32_BYTES = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const coordinate = z.string().regex(BASE64URL_32_BYTES, 'must be 32 bytes in base64url');

/** PROTOCOL.md §1: `kid` is the RFC 7638 SHA-256 thumbprint in base64url (43 characters). */
export const KID_PATTERN = BASE64URL_32_BYTES;
export const kidSchema = z
  .string()
  .regex(KID_PATTERN, 'kid must be an RFC 7638 SHA-256 thumbprint');

/** JWK members that hold private or symmetric key material (RFC 7517, RFC 7518 §6). */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

const publicUse = {
  kid: kidSchema.optional(),
  use: z.literal('sig').optional(),
  key_ops: z.array(z.literal('verify')).max(1).optional(),
};

/** Ed25519 public key (RFC 8037), for alg `EdDSA`. */
export const okpPublicJwkSchema = z.strictObject({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: coordinate,
  alg: z.literal('EdDSA').optional(),
  ...publicUse,
});

/** P-256 public key (RFC 7518 §6.2), for alg `ES256`. */
export const ecPublicJwkSchema = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: coordinate,
  y: coordinate,
  alg: z.literal('ES256').optional(),
  ...publicUse,
});

/**
 * PROTOCOL.md §1: a device or release public key: Ed25519 or P-256, nothing else. A JWK
 * with private members is refused with an issue at that member (never silently stripped),
 * so a client that uploads its private key learns it did. Whether an EC point lies on the
 * curve is checked when the key is imported for verification, not here.
 */
export const publicJwkSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    if (typeof value !== 'object' || value === null) return;
    for (const member of PRIVATE_JWK_MEMBERS) {
      if (Object.hasOwn(value, member)) {
        ctx.addIssue({
          code: 'custom',
          message: `a public JWK must not contain "${member}" (private key material)`,
          path: [member],
        });
      }
    }
  })
  .pipe(z.discriminatedUnion('kty', [okpPublicJwkSchema, ecPublicJwkSchema]));
export type PublicJwk = z.infer<typeof publicJwkSchema>;
