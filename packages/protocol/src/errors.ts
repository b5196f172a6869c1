import type { z } from 'zod';

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

/** Stable codes of {@link ProtocolError}; a transport maps them without parsing messages. */
export type ProtocolErrorCode =
  | 'payload_invalid' // a message failed its schema
  | 'bad_device_id' // not a PROTOCOL.md §1 device id
  | 'bad_topic' // not a PROTOCOL.md §4 topic
  | 'senml_invalid' // a SenML record failed its schema (RFC 8428 §4)
  | 'senml_must_understand' // a field ending in `_` we do not know (RFC 8428 §4.4)
  | 'senml_version' // `bver` newer than 10 or inconsistent within a pack (RFC 8428 §4.4)
  | 'senml_name' // resolved name breaks RFC 8428 §4.5.1 or PROTOCOL.md §5
  | 'senml_time' // resolved time is not a finite number
  | 'senml_value' // not exactly one value, or a value PROTOCOL.md §5 does not carry
  | 'too_many_records'; // PROTOCOL.md §5 records per batch

/** Limits are `too_large` (HTTP 413); every other protocol failure is `invalid`. */
const TOO_LARGE_CODES: ReadonlySet<ProtocolErrorCode> = new Set(['too_many_records']);

/**
 * A message or value that breaks PROTOCOL.md. `details.index` names the offending SenML
 * record when there is one; `details.issues` lists schema failures as `{path, message}`.
 */
export class ProtocolError extends AppError {
  declare readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options: AppErrorOptions = {}) {
    super(TOO_LARGE_CODES.has(code) ? 'too_large' : 'invalid', code, message, options);
  }
}

export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}

/** One schema failure as reported in `details.issues`: a dotted path and a message. */
export interface PayloadIssue {
  path: string;
  message: string;
}

/** At most this many issues travel in `details`, so an error stays small. */
const MAX_REPORTED_ISSUES = 10;

export function payloadIssues(error: z.ZodError): PayloadIssue[] {
  return error.issues.slice(0, MAX_REPORTED_ISSUES).map((issue) => ({
    path: issue.path.map(String).join('.'),
    message: issue.message,
  }));
}

/**
 * Parses `input` with `schema` or throws a {@link ProtocolError} carrying the issues.
 * The one way a message enters typed code (STYLE.md: validate once, at the edge).
 */
export function parsePayload<S extends z.ZodType>(
  schema: S,
  input: unknown,
  code: ProtocolErrorCode = 'payload_invalid',
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = payloadIssues(result.error);
  throw new ProtocolError(code, `${code}: ${issues[0]?.path || '(root)'}: ${issues[0]?.message}`, {
    details: { issues },
  });
}
