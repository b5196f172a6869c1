import { SetMetadata } from '@nestjs/common';
import type { Role } from '@outpost/protocol/claims';

/**
 * Every route declares who may call it; the guard refuses routes that declare nothing
 * (fail closed).
 */
export type AccessPolicy =
  | { type: 'public' }
  | { type: 'api'; roles: readonly Role[] }
  | { type: 'device' };

export const ACCESS_METADATA = 'outpost:access';

/** Callable with an API token carrying one of `roles` (admin may call everything). */
export const Roles = (...roles: Role[]) =>
  SetMetadata(ACCESS_METADATA, { type: 'api', roles } satisfies AccessPolicy);
/** Callable without credentials (health, docs, enrollment, which carries its own token). */
export const Public = () => SetMetadata(ACCESS_METADATA, { type: 'public' } satisfies AccessPolicy);

/** Callable by a device with its device JWT (PROTOCOL.md §5 HTTP ingest). */
export const DeviceAccess = () =>
  SetMetadata(ACCESS_METADATA, { type: 'device' } satisfies AccessPolicy);

/** SURFACES.md: viewer ⊂ operator, technician, firmware ⊂ admin. */
export function hasRole(granted: readonly Role[], required: Role): boolean {
  if (granted.includes('admin')) return true;
  if (required === 'viewer') return granted.length > 0;
  return granted.includes(required);
}

export function mayCall(granted: readonly Role[], anyOf: readonly Role[]): boolean {
  return anyOf.some((r) => hasRole(granted, r));
}

/** Who made an authenticated API request. */
export interface Principal {
  tokenId: string;
  name: string;
  roles: readonly Role[];
}
