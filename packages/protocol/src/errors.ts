/**
 * The one error base class of Outpost. Services throw domain subclasses; each transport
 * (HTTP problem details, MQTT CONNACK/refusal, CLI exit line) maps `kind` once.
 */
export type ErrorKind =
  | 'invalid' // bad input: schema, size, format
  | 'unauthenticated' // missing or bad credentials
  | 'forbidden' // authenticated but not allowed
  | 'not_found'
  | 'conflict' // state conflict: already used, already exists
  | 'too_large'
  | 'rate_limited'
  | 'unavailable' // a dependency is down; retry later
  | 'internal';

export interface AppErrorOptions {
  cause?: unknown;
  /** Safe, structured details for the caller (never secrets). */
  details?: Record<string, unknown>;
}

export class AppError extends Error {
  readonly kind: ErrorKind;
  /** Stable machine-readable code, e.g. `token_expired`, `device_revoked`. */
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(kind: ErrorKind, code: string, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.code = code;
    this.details = options.details;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
