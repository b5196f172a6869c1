import type { PublicJwk } from '@outpost/signing/keys';
import type { EnrollReply } from './api-schemas.js';

/**
 * `credentials.json` written by `outpost device credentials` (PROTOCOL.md §2.4): everything a
 * device needs to connect except its private key, which sits next to it in `device-key.json`.
 */
export interface CredentialsFile {
  v: 1;
  deviceId: string;
  kind: string;
  gateway: string | null;
  kid: string;
  alg: string;
  /** File name of the private JWK, relative to this file. */
  privateKeyFile: string;
  publicKey: PublicJwk;
  endpoints: EnrollReply['endpoints'];
  audience: string;
  /** The service's JWKS, to verify commands (PROTOCOL.md §8). */
  jwks: EnrollReply['jwks'];
  /** Trusted release public keys, to verify firmware manifests. */
  releaseKeys: unknown[];
  enrolledAt: string;
}

export const KEY_FILE = 'device-key.json';
export const CREDENTIALS_FILE = 'credentials.json';

export function credentialsFile(
  reply: EnrollReply,
  key: { kid: string; alg: string; publicJwk: PublicJwk },
  enrolledAt: Date,
): CredentialsFile {
  return {
    v: 1,
    deviceId: reply.device.id,
    kind: reply.device.kind,
    gateway: reply.device.gateway,
    kid: key.kid,
    alg: key.alg,
    privateKeyFile: KEY_FILE,
    publicKey: key.publicJwk,
    endpoints: reply.endpoints,
    audience: reply.audience,
    jwks: reply.jwks,
    releaseKeys: reply.releaseKeys,
    enrolledAt: enrolledAt.toISOString(),
  };
}
