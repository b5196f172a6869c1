import { AppError } from '@outpost/protocol/errors';
import { describe, expect, it } from 'vitest';
import { CliError, errorLine, LOGIN_HINT, oneLine, UsageError } from './errors.js';

describe('errorLine', () => {
  it('is `error: message: hint` on one line', () => {
    const err = new CliError('unauthenticated', 'not_logged_in', 'not logged in', {
      hint: LOGIN_HINT,
    });
    expect(errorLine(err)).toBe(
      'error: not logged in: run `outpost login --url URL --token TOKEN` or set OUTPOST_URL and OUTPOST_TOKEN',
    );
    expect(err.exitCode).toBe(1);
  });

  it('flattens newlines and escape sequences from remote text', () => {
    const err = new CliError('invalid', 'x', 'bad\nthing \u001b[2Jhere');
    expect(errorLine(err)).toBe('error: bad thing [2Jhere');
  });

  it('gives usage errors exit code 2', () => {
    expect(new UsageError('bad flag').exitCode).toBe(2);
  });

  it('names the code of other domain errors and calls anything else a bug', () => {
    expect(errorLine(new AppError('invalid', 'key_invalid', 'bad key'))).toBe(
      'error: bad key (key_invalid)',
    );
    expect(errorLine(new TypeError('x is undefined'))).toBe(
      'error: x is undefined: this is a bug in outpost; please report it',
    );
  });
});

describe('oneLine', () => {
  it('shortens long text', () => {
    expect(oneLine('a'.repeat(20), 10)).toBe(`${'a'.repeat(9)}…`);
  });
});
