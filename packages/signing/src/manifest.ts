import type { KeyCache } from './key-cache.js';
import type { PublicJwk } from './keys.js';
import { checkPayload, type VerifiedPayload, verifiedPayload } from './payload.js';
import { type SigningKeyInput, signJson } from './sign.js';
import { type PayloadSchema, parseJsonObject, verifyJws } from './verify.js';

/** Largest manifest JWS accepted: a manifest is a few hundred bytes of JSON. */
export const MAX_MANIFEST_BYTES = 16 * 1024;

/**
 * PROTOCOL.md §8 `ota.offer`: an OTA manifest signed by a release key (a firmware engineer's
 * key, never the service's).
 */
export function signManifest(releaseKey: SigningKeyInput, manifest: unknown): Promise<string> {
  return signJson('manifest', manifest, releaseKey);
}

export interface VerifyManifestOptions {
  /** The trusted release public keys the device received at enrollment or by `keys.release`. */
  readonly trustedKeys: readonly PublicJwk[];
  /** Defaults to `MAX_MANIFEST_BYTES`. */
  readonly maxBytes?: number;
  readonly keyCache?: KeyCache;
}

/**
 * Verifies a manifest against the trusted release keys (PROTOCOL.md §1: a compromised service
 * cannot forge one) and returns its payload and the `kid` of the release key that signed it.
 * With a schema the payload is validated (`payload_invalid`); without, it is returned as JSON.
 */
export function verifyManifest(
  jws: string | Uint8Array,
  options: VerifyManifestOptions,
): Promise<VerifiedPayload<unknown>>;
export function verifyManifest<T>(
  jws: string | Uint8Array,
  options: VerifyManifestOptions & { readonly schema: PayloadSchema<T> },
): Promise<VerifiedPayload<T>>;
export async function verifyManifest<T>(
  jws: string | Uint8Array,
  options: VerifyManifestOptions & { readonly schema?: PayloadSchema<T> },
): Promise<VerifiedPayload<T | unknown>> {
  const verified = await verifyJws('manifest', jws, {
    keys: options.trustedKeys,
    maxBytes: options.maxBytes ?? MAX_MANIFEST_BYTES,
    ...(options.keyCache === undefined ? {} : { keyCache: options.keyCache }),
  });
  const manifest = parseJsonObject('manifest', verified.payload, 'manifest');
  return verifiedPayload(verified, checkPayload('manifest', options.schema, manifest));
}
