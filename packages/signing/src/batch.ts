import { MAX_MESSAGE_BYTES } from '@outpost/protocol/limits';
import type { KeyCache } from './key-cache.js';
import { type VerifiedPayload, verifiedPayload } from './payload.js';
import { type SigningKeyInput, signJson } from './sign.js';
import { type KeySource, parseJsonPayload, verifyJws } from './verify.js';

/**
 * PROTOCOL.md §5: a telemetry batch as a compact JWS signed by the publishing device, its
 * payload the batch as UTF-8 JSON.
 */
export function signBatch(key: SigningKeyInput, batch: unknown): Promise<string> {
  return signJson('batch', batch, key);
}

export interface VerifyBatchOptions {
  /** The publisher's registered keys. */
  readonly keys: KeySource;
  /** Defaults to `MAX_MESSAGE_BYTES` (PROTOCOL.md §5). */
  readonly maxBytes?: number;
  readonly keyCache?: KeyCache;
}

/**
 * Verifies a batch JWS and returns its parsed JSON payload, unvalidated: the batch schema is
 * the caller's (`packages/protocol`). Replays are made idempotent by `(publisher, boot, seq)`
 * downstream, not here.
 */
export async function verifyBatch(
  jws: string | Uint8Array,
  options: VerifyBatchOptions,
): Promise<VerifiedPayload<unknown>> {
  const verified = await verifyJws('batch', jws, {
    ...options,
    maxBytes: options.maxBytes ?? MAX_MESSAGE_BYTES,
  });
  return verifiedPayload(verified, parseJsonPayload('batch', verified.payload, 'batch'));
}
