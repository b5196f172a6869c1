import { describe, expect, it } from 'vitest';
import type { Device } from '../api-schemas.js';
import { renderTable } from '../output.js';
import { deviceColumns, devicePairs, importErrorLines, listQuery } from './device.js';

const device: Device = {
  id: 'boiler-7',
  kind: 'device',
  name: null,
  tags: { site: 'berlin', line: '2' },
  gateway: 'gw-1',
  status: 'active',
  connectivity: {
    state: 'online',
    online: true,
    lastSeen: '2025-01-01T11:59:30Z',
    disconnectReason: null,
  },
  outbox: null,
  keys: [{ kid: 'k1', alg: 'EdDSA', addedAt: '2025-01-01T00:00:00Z' }],
  createdAt: '2025-01-01T00:00:00Z',
  updatedAt: '2025-01-01T00:00:00Z',
};
const now = Date.parse('2025-01-01T12:00:00Z');

describe('device list', () => {
  it('shows id, kind, state, gateway, last seen and tags', () => {
    expect(renderTable([device], deviceColumns(now))).toBe(
      [
        'ID        KIND    STATE   GATEWAY  LAST SEEN  TAGS',
        'boiler-7  device  online  gw-1     30s ago    line=2,site=berlin',
      ].join('\n'),
    );
  });

  it('builds the query from the flags, one tag parameter per pair', () => {
    expect(listQuery({ tag: [['site', 'a']], status: 'online', search: 'boil', limit: 5 })).toEqual(
      {
        tag: ['site=a'],
        status: 'online',
        kind: undefined,
        gateway: undefined,
        q: 'boil',
        limit: 5,
      },
    );
    expect(
      listQuery({
        tag: [
          ['a', '1'],
          ['b', '2'],
        ],
      }).tag,
    ).toEqual(['a=1', 'b=2']);
    expect(listQuery({}).tag).toEqual([]);
    expect(listQuery({ all: true }).limit).toBe(500);
  });
});

describe('device show', () => {
  it('lists the record as key/value pairs', () => {
    const pairs = Object.fromEntries(devicePairs(device, now));
    expect(pairs).toMatchObject({
      id: 'boiler-7',
      state: 'online',
      gateway: 'gw-1',
      tags: 'line=2,site=berlin',
      'last seen': '2025-01-01T11:59:30Z (30s ago)',
      keys: 'k1 (EdDSA)',
    });
    expect(
      Object.fromEntries(
        devicePairs({ ...device, connectivity: { ...device.connectivity, lastSeen: null } }, now),
      )['last seen'],
    ).toBe('never');
  });
});

describe('import refusals', () => {
  it('prints `line N (id): message`, 20 at most, then how many more', () => {
    const errors = Array.from({ length: 25 }, (_, i) => ({
      line: i + 2,
      id: `d${i}`,
      message: 'id: device id must match ^[a-z0-9][a-z0-9._-]{0,63}$',
    }));
    const lines = importErrorLines({ errors, errorCount: 140 });
    expect(lines).toHaveLength(21);
    expect(lines[0]).toBe('line 2 (d0): id: device id must match ^[a-z0-9][a-z0-9._-]{0,63}$');
    expect(lines[20]).toBe('and 120 more');
  });

  it('leaves out the id when the row has none', () => {
    expect(
      importErrorLines({ errors: [{ line: 1, message: 'unknown column(s): x' }], errorCount: 1 }),
    ).toEqual(['line 1: unknown column(s): x']);
  });
});
