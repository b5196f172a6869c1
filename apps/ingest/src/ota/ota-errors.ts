import { AppError } from '@outpost/protocol/errors';

/** Why an uploaded manifest was refused: unreadable, or not signed by a trusted release key. */
export class ManifestRefused extends AppError {
  constructor(
    code:
      | 'manifest_missing'
      | 'manifest_invalid'
      | 'release_key_unknown'
      | 'manifest_signature_invalid',
    message: string,
    details?: Record<string, unknown>,
  ) {
    super('invalid', code, message, details ? { details } : {});
  }
}

export class FirmwareTooLarge extends AppError {
  constructor(size: number, max: number) {
    super('too_large', 'firmware_too_large', `the firmware is ${size} bytes; at most ${max}`, {
      details: { size, max },
    });
  }
}

/** The uploaded bytes are not the ones the manifest describes. */
export class ArtifactMismatch extends AppError {
  constructor(
    code: 'artifact_size_mismatch' | 'artifact_sha256_mismatch',
    message: string,
    details: Record<string, unknown>,
  ) {
    super('invalid', code, message, { details });
  }
}

/** The stored artifact no longer has the digest it was uploaded with: never served. */
export class ArtifactCorrupt extends AppError {
  constructor(firmwareId: string) {
    super(
      'unavailable',
      'artifact_corrupt',
      `the stored artifact of firmware ${firmwareId} does not match its sha256; upload it again`,
      { details: { firmwareId } },
    );
  }
}

export class FirmwareExists extends AppError {
  constructor(component: string, version: string, id: string) {
    super(
      'conflict',
      'firmware_exists',
      `firmware ${component} ${version} exists (${id}) with other bytes; versions are not reused`,
      { details: { component, version, id } },
    );
  }
}

/** A firmware whose signing key is no longer trusted cannot be rolled out. */
export class FirmwareUntrusted extends AppError {
  constructor(id: string, kid: string) {
    super(
      'conflict',
      'firmware_untrusted',
      `firmware ${id} is signed by release key ${kid}, which is no longer trusted`,
      { details: { id, kid } },
    );
  }
}

export class ReleaseKeyRefused extends AppError {
  constructor(
    code: 'release_key_revoked' | 'last_release_key' | 'release_key_kid_mismatch',
    message: string,
    kid: string,
  ) {
    super(code === 'release_key_kid_mismatch' ? 'invalid' : 'conflict', code, message, {
      details: { kid },
    });
  }
}

export class RolloutFinished extends AppError {
  constructor(id: string, status: string) {
    // Not `status`: details become problem members, and that one is the HTTP status.
    super('conflict', 'rollout_finished', `rollout ${id} is ${status}; create a new one`, {
      details: { id, rolloutStatus: status },
    });
  }
}

export class RolloutTargetInvalid extends AppError {
  constructor(
    code: 'target_unknown' | 'target_empty' | 'target_too_large',
    message: string,
    details: Record<string, unknown> = {},
  ) {
    super(code === 'target_too_large' ? 'too_large' : 'invalid', code, message, { details });
  }
}

/** Devices already updating this component in another rollout: two would race. */
export class RolloutOverlaps extends AppError {
  constructor(busy: readonly { deviceId: string; rolloutId: string }[]) {
    const first = busy[0];
    super(
      'conflict',
      'rollout_overlaps',
      `${busy.length} target device${busy.length === 1 ? ' is' : 's are'} still in an active rollout of this component${first ? ` (${first.deviceId} in ${first.rolloutId})` : ''}`,
      { details: { devices: busy.slice(0, 100), count: busy.length } },
    );
  }
}
