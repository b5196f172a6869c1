import { describe, expect, it } from 'vitest';
import { debianPackageOf, findBinary, MissingBinaryError } from './binaries.js';

describe('findBinary', () => {
  it('searches preferred dirs, then PATH, then the extra dirs, in order', () => {
    const checked: string[] = [];
    const found = findBinary('initdb', {
      preferDirs: ['/opt/pg/bin'],
      path: '/usr/local/bin:/usr/bin',
      searchDirs: ['/usr/sbin', '/usr/lib/postgresql/15/bin'],
      isExecutable: (file) => {
        checked.push(file);
        return file === '/usr/lib/postgresql/15/bin/initdb';
      },
    });
    expect(found).toBe('/usr/lib/postgresql/15/bin/initdb');
    expect(checked).toEqual([
      '/opt/pg/bin/initdb',
      '/usr/local/bin/initdb',
      '/usr/bin/initdb',
      '/usr/sbin/initdb',
      '/usr/lib/postgresql/15/bin/initdb',
    ]);
  });

  it('looks at each directory once', () => {
    const checked: string[] = [];
    expect(() =>
      findBinary('socat', {
        path: '/usr/bin:/usr/bin',
        searchDirs: ['/usr/bin'],
        isExecutable: (file) => {
          checked.push(file);
          return false;
        },
      }),
    ).toThrow(MissingBinaryError);
    expect(checked).toEqual(['/usr/bin/socat']);
  });

  it('names the setup command and the Debian package when nothing is found', () => {
    const lookup = { path: '/nowhere', searchDirs: [], isExecutable: () => false };
    expect(() => findBinary('redis-server', lookup)).toThrow(
      'redis-server not found: run `npm run setup` (installs Debian package redis-server)',
    );
    expect(() => findBinary('influxd', lookup)).toThrow(
      'influxd not found: run `npm run setup` (installs Debian package influxdb)',
    );
    expect(() => findBinary('mosquitto_pub', lookup)).toThrow(
      'mosquitto_pub not found: run `npm run setup` (installs Debian package mosquitto-clients)',
    );
  });

  it('still names the setup command for a binary of no known package', () => {
    try {
      findBinary('frobnicate', { path: '', searchDirs: [], isExecutable: () => false });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(MissingBinaryError);
      expect((err as MissingBinaryError).message).toBe('frobnicate not found: run `npm run setup`');
      expect((err as MissingBinaryError).debianPackage).toBeUndefined();
    }
  });
});

describe('debianPackageOf', () => {
  it('maps PostgreSQL server and client binaries to their packages', () => {
    expect(debianPackageOf('initdb')).toBe('postgresql');
    expect(debianPackageOf('psql')).toBe('postgresql-client');
    expect(debianPackageOf('victoria-metrics')).toBe('victoria-metrics');
  });
});
