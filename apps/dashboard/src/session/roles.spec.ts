import { describe, expect, it } from 'vitest';
import { mayOffer, rolesOf } from './roles.js';

/** base64url of the UTF-8 JSON, as a JWT segment. */
const b64 = (o: unknown) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(o))))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
const jwt = (payload: unknown) =>
  `${b64({ alg: 'EdDSA', typ: 'outpost-api+jwt' })}.${b64(payload)}.sig`;

describe('token roles', () => {
  it('reads the roles of an API token, dropping unknown ones', () => {
    expect(rolesOf(jwt({ sub: 'ana', roles: ['operator', 'wizard'] }))).toEqual(['operator']);
    expect(rolesOf(jwt({ sub: 'ana', roles: ['viewer', 'firmware'], name: 'Zoë ✓' }))).toEqual([
      'viewer',
      'firmware',
    ]);
  });

  it('cannot read an opaque token or a malformed payload', () => {
    expect(rolesOf('test-admin-abcdef')).toBeNull();
    expect(rolesOf('a.b.c')).toBeNull();
    expect(rolesOf(`x.${b64('not an object')}.y`)).toBeNull();
    expect(rolesOf(jwt({ sub: 'no roles' }))).toBeNull();
    expect(rolesOf('x.%%%.y')).toBeNull();
  });

  it('offers actions by role; admin everything; unknown grants leave it to the server', () => {
    expect(mayOffer(['viewer'], 'operator')).toBe(false);
    expect(mayOffer(['operator'], 'operator')).toBe(true);
    expect(mayOffer(['operator'], 'firmware')).toBe(false);
    expect(mayOffer(['technician'], 'viewer')).toBe(true);
    expect(mayOffer(['admin'], 'firmware')).toBe(true);
    expect(mayOffer(null, 'firmware')).toBe(true);
    expect(mayOffer([], 'viewer')).toBe(false);
  });
});
