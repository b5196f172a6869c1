import { CLOCK_SKEW_S, MAX_MESSAGE_BYTES } from '@outpost/protocol/limits';
import type { KeyCache } from './key-cache.js';
import { checkPayload, type VerifiedPayload, verifiedPayload } from './payload.js';
import type { ReplayCache } from './replay-cache.js';
import { type SigningKeyInput, signJson } from './sign.js';
import {
  defaultNow,
  fail,
  type KeySource,
  type PayloadSchema,
  parseJsonObject,
  type TimeOptions,
  verifyJws,
} from './verify.js';

/**
 * The part of a command (PROTOCOL.md §8: `{v, id, type, exp, ...}`) this module relies on;
 * the full schema lives in `packages/protocol`. `device` names the target device.
 */
export interface CommandEnvelope {
  /** Epoch seconds after which the device must ignore the command. */
  exp: number;
  /** Unique per command; the replay cache key. */
  id?: string;
  device?: string;
  [field: string]: unknown;
}

/** PROTOCOL.md §8: a command from the service to a device, signed by the service key. */
export function signCommand(
  serviceKey: SigningKeyInput,
  command: CommandEnvelope,
): Promise<string> {
  return signJson('command', command, serviceKey);
}

export interface VerifyCommandOptions extends TimeOptions {
  /** The service JWKS received at enrollment. */
  readonly keys: KeySource;
  /**
   * The device(s) this receiver acts for (a gateway also for its children). When set, the
   * command's `device` must be one of them.
   */
  readonly deviceId?: string | readonly string[];
  /** When given, each command `id` is accepted once until the command expires. */
  readonly replayCache?: ReplayCache;
  /** Defaults to `MAX_MESSAGE_BYTES`. */
  readonly maxBytes?: number;
  readonly keyCache?: KeyCache;
}

/**
 * Verifies a command (PROTOCOL.md §8: "devices ignore commands whose signature, `exp` or
 * target device does not check out"). `exp` is required (`exp_missing`) and honoured with the
 * clock skew; with a schema the payload is validated (`payload_invalid`).
 */
export function verifyCommand(
  jws: string | Uint8Array,
  options: VerifyCommandOptions,
): Promise<VerifiedPayload<unknown>>;
export function verifyCommand<T>(
  jws: string | Uint8Array,
  options: VerifyCommandOptions & { readonly schema: PayloadSchema<T> },
): Promise<VerifiedPayload<T>>;
export async function verifyCommand<T>(
  jws: string | Uint8Array,
  options: VerifyCommandOptions & { readonly schema?: PayloadSchema<T> },
): Promise<VerifiedPayload<T | unknown>> {
  const verified = await verifyJws('command', jws, {
    ...options,
    maxBytes: options.maxBytes ?? MAX_MESSAGE_BYTES,
  });
  const command = parseJsonObject('command', verified.payload, 'command');
  const now = (options.now ?? defaultNow)();
  const skew = options.clockSkewS ?? CLOCK_SKEW_S;

  if (!Object.hasOwn(command, 'exp')) fail('command', 'exp_missing', 'the command has no "exp"');
  const { exp } = command;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    fail('command', 'payload_invalid', '"exp" must be epoch seconds');
  }
  if (now - skew >= exp) fail('command', 'token_expired', 'the command has expired', { exp, now });

  if (options.deviceId !== undefined) {
    const targets = typeof options.deviceId === 'string' ? [options.deviceId] : options.deviceId;
    if (typeof command.device !== 'string' || !targets.includes(command.device)) {
      fail('command', 'subject_mismatch', 'the command is for another device');
    }
  }
  const payload = checkPayload('command', options.schema, command);

  if (options.replayCache !== undefined) {
    if (typeof command.id !== 'string' || command.id.length === 0) {
      fail('command', 'payload_invalid', 'replay protection needs the command "id"');
    }
    if (!(await options.replayCache.checkAndRemember(command.id, exp + skew))) {
      fail('command', 'jti_replayed', 'the command was received before');
    }
  }
  return verifiedPayload(verified, payload);
}
