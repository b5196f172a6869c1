/**
 * What the signed-in token may do, read from its payload only to show or hide controls:
 * the server checks every call. SURFACES.md roles; admin may do everything.
 */
export const ROLES = ['viewer', 'operator', 'technician', 'firmware', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** The roles of the token, or `null` when they cannot be read (an opaque token). */
export type Grants = readonly Role[] | null;

function base64UrlDecode(text: string): string | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  const padded =
    text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  try {
    const binary = atob(padded);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** Roles in a JWT's payload; not verified (the server verifies). */
export function rolesOf(token: string): Grants {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const json = base64UrlDecode(parts[1]!);
  if (json === undefined) return null;
  try {
    const payload = JSON.parse(json) as { roles?: unknown };
    if (!Array.isArray(payload.roles)) return null;
    return payload.roles.filter((r): r is Role => (ROLES as readonly string[]).includes(r));
  } catch {
    return null;
  }
}

/**
 * Whether to offer an action that needs `role`. Unknown grants offer it and let the
 * server's 403 decide.
 */
export function mayOffer(grants: Grants, role: Role): boolean {
  if (grants === null) return true;
  if (grants.includes('admin')) return true;
  if (role === 'viewer') return grants.length > 0;
  return grants.includes(role);
}
