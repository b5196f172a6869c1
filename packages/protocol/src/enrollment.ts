import { z } from 'zod';
import { compactJwsSchema } from './claims.js';
import { publicJwkSchema } from './keys.js';

/**
 * PROTOCOL.md §2 step 2: body of `POST /api/v1/enroll`. `token` is the enrollment token,
 * `publicKey` the device's new public key, `proof` a compact JWS over
 * `{jti, sub, iat}` (see `enrollmentProofClaimsSchema` in `./claims`) made with its private key.
 */
export const enrollmentRequestSchema = z.object({
  token: compactJwsSchema,
  publicKey: publicJwkSchema,
  proof: compactJwsSchema,
});
export type EnrollmentRequest = z.infer<typeof enrollmentRequestSchema>;
