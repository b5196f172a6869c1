import { AppError } from '@outpost/protocol/errors';
import { describe, expect, it } from 'vitest';
import {
  isSigningError,
  SIGNING_ERROR_CODES,
  SIGNING_ERROR_KINDS,
  SigningError,
} from './errors.js';

describe('SigningError', () => {
  it('is an AppError whose kind follows from its code', () => {
    const error = new SigningError('token_expired', 'expired', { details: { exp: 1 } });
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({
      name: 'SigningError',
      kind: 'unauthenticated',
      code: 'token_expired',
      details: { exp: 1 },
    });
    expect(isSigningError(error, 'token_expired')).toBe(true);
    expect(isSigningError(error, 'signature_invalid')).toBe(false);
    expect(isSigningError(new Error('x'))).toBe(false);
  });

  it('uses only the kinds invalid and unauthenticated', () => {
    expect(new Set(Object.values(SIGNING_ERROR_KINDS))).toEqual(
      new Set(['invalid', 'unauthenticated']),
    );
    expect(SIGNING_ERROR_CODES).toContain('jti_replayed');
  });
});
