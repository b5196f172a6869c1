import { AppError } from '@outpost/protocol/errors';

export class DeviceRevoked extends AppError {
  constructor(id: string) {
    super('conflict', 'device_revoked', `device ${id} is revoked`, { details: { id } });
  }
}

export class DeviceKindMismatch extends AppError {
  constructor(id: string, existing: string, requested: string) {
    super('conflict', 'kind_mismatch', `device ${id} is a ${existing}, not a ${requested}`, {
      details: { id, existing, requested },
    });
  }
}

export class GatewayInvalid extends AppError {
  constructor(gateway: string, reason: string) {
    super('invalid', 'gateway_invalid', `gateway ${gateway} ${reason}`, { details: { gateway } });
  }
}

export class EnrollmentRefused extends AppError {
  constructor(reason: 'unknown' | 'used' | 'expired' | 'revoked' | 'key_in_use') {
    const table = {
      unknown: ['unauthenticated', 'enrollment_unknown', 'the enrollment token is not known'],
      used: ['conflict', 'enrollment_used', 'the enrollment token was already used'],
      expired: ['unauthenticated', 'enrollment_expired', 'the enrollment token has expired'],
      revoked: ['conflict', 'device_revoked', 'the device is revoked'],
      key_in_use: ['conflict', 'key_in_use', 'this public key is already registered'],
    } as const;
    const [kind, code, message] = table[reason];
    super(kind, code, message);
  }
}

export class ImportInvalid extends AppError {
  constructor(
    errors: readonly { line: number; id?: string; message: string }[],
    errorCount: number,
  ) {
    const first = errors[0];
    super(
      'invalid',
      'import_invalid',
      `import refused, nothing was written: ${errorCount} error${errorCount === 1 ? '' : 's'}${first ? `; line ${first.line}: ${first.message}` : ''}`,
      { details: { errors, errorCount } },
    );
  }
}
