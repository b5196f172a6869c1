import { describe, expect, it } from 'vitest';
import { matchRoute, paths } from './router.js';

describe('routes', () => {
  it.each([
    ['/', { view: 'overview' }],
    ['/devices', { view: 'devices' }],
    ['/devices/', { view: 'devices' }],
    ['/devices/th-1.boiler', { view: 'device', id: 'th-1.boiler' }],
    ['/devices/a%20b', { view: 'device', id: 'a b' }],
    ['/devices/%E0%A4%A', { view: 'not-found' }],
    ['/alerts', { view: 'alerts' }],
    ['/rollouts', { view: 'rollouts' }],
    ['/rollouts/r-1', { view: 'rollout', id: 'r-1' }],
    ['/devices/a/b', { view: 'not-found' }],
    ['/nope', { view: 'not-found' }],
  ])('%s', (path, route) => {
    expect(matchRoute(path)).toEqual(route);
  });

  it('builds the paths it matches', () => {
    expect(matchRoute(paths.device('x/y'))).toEqual({ view: 'device', id: 'x/y' });
    expect(paths.devices('?status=online')).toBe('/devices?status=online');
  });
});
