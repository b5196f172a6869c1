import { describe, expect, it } from 'vitest';
import { tokenState } from './tokens.js';

const token = {
  id: 't1',
  name: 'ci',
  roles: ['viewer'],
  createdBy: 'bootstrap',
  createdAt: 0,
  expiresAt: null,
  revokedAt: null,
  lastUsedAt: null,
};

describe('tokenState', () => {
  it('is revoked, expired or active', () => {
    expect(tokenState(token, 1000)).toBe('active');
    expect(tokenState({ ...token, expiresAt: 1000 }, 1000)).toBe('expired');
    expect(tokenState({ ...token, expiresAt: 2000 }, 1000)).toBe('active');
    expect(tokenState({ ...token, expiresAt: 500, revokedAt: 400 }, 1000)).toBe('revoked');
  });
});
