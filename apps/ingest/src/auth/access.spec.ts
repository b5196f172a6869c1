import { describe, expect, it } from 'vitest';
import { hasRole, mayCall } from './access.js';

describe('roles', () => {
  it.each([
    [['viewer'], 'viewer', true],
    [['viewer'], 'operator', false],
    [['operator'], 'viewer', true],
    [['technician'], 'operator', false],
    [['firmware'], 'technician', false],
    [['admin'], 'firmware', true],
    [[], 'viewer', false],
  ] as const)('%j has %s: %s', (granted, required, expected) => {
    expect(hasRole(granted, required)).toBe(expected);
  });

  it('accepts any of several roles', () => {
    expect(mayCall(['technician'], ['operator', 'technician'])).toBe(true);
    expect(mayCall(['viewer'], ['operator', 'technician'])).toBe(false);
  });
});
