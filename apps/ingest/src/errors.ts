import { AppError } from '@outpost/protocol/errors';

/** Errors that belong to no single feature. Feature errors live in their folder. */

export class ConfigInvalid extends AppError {
  constructor(readonly problems: readonly string[]) {
    super('invalid', 'config_invalid', `invalid configuration:\n  ${problems.join('\n  ')}`, {
      details: { problems },
    });
  }
}

export class NotFound extends AppError {
  constructor(what: string, id: string) {
    super('not_found', `${what}_not_found`, `${what} ${JSON.stringify(id)} does not exist`, {
      details: { id },
    });
  }
}

export class InvalidInput extends AppError {
  constructor(
    message: string,
    readonly errors: readonly { path: string; message: string }[] = [],
    code = 'invalid_input',
  ) {
    super('invalid', code, message, { details: { errors } });
  }
}

export class Unauthenticated extends AppError {
  constructor(code = 'unauthenticated', message = 'a valid API token is required') {
    super('unauthenticated', code, message);
  }
}

export class Forbidden extends AppError {
  constructor(message: string, code = 'forbidden') {
    super('forbidden', code, message);
  }
}

export class RateLimited extends AppError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super('rate_limited', 'rate_limited', message, { details: { retryAfterS } });
  }
}

export class StorageUnavailable extends AppError {
  constructor(message: string, cause?: unknown) {
    super('unavailable', 'storage_unavailable', message, { cause });
  }
}
