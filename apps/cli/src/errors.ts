import { AppError, type ErrorKind } from '@outpost/protocol/errors';

/** How the process ends: 1 for a failed operation, 2 for a command line that cannot run. */
export type ExitCode = 1 | 2;

export interface CliErrorOptions {
  /** What to do about it; printed after the message on the same line. */
  hint?: string;
  /** Further lines, printed after the error line (a list of refused import rows). */
  more?: readonly string[];
  exitCode?: ExitCode;
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * The one error the CLI reports: a stable `code` (the server's problem code where there is
 * one), a message saying what went wrong and a hint saying what to do.
 */
export class CliError extends AppError {
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;
  readonly more: readonly string[];

  constructor(kind: ErrorKind, code: string, message: string, options: CliErrorOptions = {}) {
    super(kind, code, message, {
      ...(options.details ? { details: options.details } : {}),
      ...(options.cause !== undefined ? { cause: options.cause } : {}),
    });
    this.hint = options.hint;
    this.more = options.more ?? [];
    this.exitCode = options.exitCode ?? 1;
  }
}

/** A flag, argument or environment value that cannot be used: exit code 2, like commander's. */
export class UsageError extends CliError {
  constructor(message: string, hint?: string) {
    super('invalid', 'usage', message, { exitCode: 2, ...(hint ? { hint } : {}) });
  }
}

export const LOGIN_HINT =
  'run `outpost login --url URL --token TOKEN` or set OUTPOST_URL and OUTPOST_TOKEN';

/**
 * Text that came from elsewhere (a server, a file) made safe for one terminal line:
 * control characters, including escape sequences and newlines, become spaces.
 */
export function oneLine(text: string, max = 500): string {
  const flat = text.replace(/\s*[\p{Cc}\u2028\u2029]+\s*/gu, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The single stderr line for an error. */
export function errorLine(err: unknown): string {
  if (err instanceof CliError) {
    return `error: ${oneLine(err.message)}${err.hint ? `: ${oneLine(err.hint)}` : ''}`;
  }
  if (err instanceof AppError) return `error: ${oneLine(err.message)} (${err.code})`;
  const message = err instanceof Error ? err.message : String(err);
  return `error: ${oneLine(message)}: this is a bug in outpost; please report it`;
}
