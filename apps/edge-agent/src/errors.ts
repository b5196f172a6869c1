import { AppError, type AppErrorOptions, type ErrorKind } from '@outpost/protocol/errors';

/**
 * Errors the agent raises for an operator: a bad config file, a missing identity, a refused
 * enrollment. `main.ts` maps them once to a one-line message and an exit code.
 */
export class AgentError extends AppError {
  /** What to do about it, printed under the message. */
  readonly hint: string | undefined;

  constructor(
    kind: ErrorKind,
    code: string,
    message: string,
    options: AppErrorOptions & { hint?: string } = {},
  ) {
    super(kind, code, message, options);
    this.hint = options.hint;
  }
}

/** Exit codes: 2 for a usage or config problem, 1 for everything else (sysexits-like). */
export function exitCodeOf(err: unknown): number {
  return err instanceof AgentError && err.kind === 'invalid' ? 2 : 1;
}
