import { describe, expect, it } from 'vitest';
import { ChildStanding } from './child-standing.js';

describe('ChildStanding', () => {
  it('knows the gateway and the children whose subscription the broker granted last', () => {
    const s = new ChildStanding({ gatewayId: 'gw-1' });
    expect(s.registered('gw-1')).toBe(true);
    expect(s.registered('th-1')).toBe(false);
    s.answered([
      ['th-1', true],
      ['th-2', true],
      ['stranger-1', false],
    ]);
    expect(['th-1', 'th-2', 'stranger-1'].map((id) => s.registered(id))).toEqual([
      true,
      true,
      false,
    ]);
    expect(s.registeredChildren).toBe(2);
    // A later connection's answer wins: th-2 was moved to another gateway meanwhile.
    s.answered([['th-2', false]]);
    expect(s.registered('th-2')).toBe(false);
    expect(s.registered('th-1')).toBe(true);
  });

  it('isolates refused devices that are not known registered, until a grant releases them', () => {
    const s = new ChildStanding({ gatewayId: 'gw-1' });
    s.answered([['th-1', true]]);
    expect(s.isolate(['stranger-1', 'th-1', 'gw-1', 'stranger-1', 'sensor-9'])).toEqual([
      'stranger-1',
      'sensor-9',
    ]);
    expect(s.isolated('stranger-1')).toBe(true);
    expect(s.isolated('th-1')).toBe(false);
    expect(s.isolate(['stranger-1'])).toEqual([]);
    // Still refused on the next connection: stays apart.
    expect(s.answered([['stranger-1', false]])).toEqual([]);
    expect(s.isolated('stranger-1')).toBe(true);
    // Registered, and granted on a later connection: batched with the others again.
    expect(s.answered([['stranger-1', true]])).toEqual(['stranger-1']);
    expect(s.isolated('stranger-1')).toBe(false);
    expect(s.registered('stranger-1')).toBe(true);
    expect(s.isolatedDevices).toBe(1);
  });

  it('withholds an isolated device while the broker refuses its commands topic', () => {
    const s = new ChildStanding({ gatewayId: 'gw-1' });
    s.answered([['serial-9', false]]);
    // Refused a subscription, but not yet by the ingest: sent like the others.
    expect(s.withheld('serial-9')).toBe(false);
    s.isolate(['serial-9', 'local-7']);
    expect(s.withheld('serial-9')).toBe(true);
    // A device the agent never subscribes for: only the ingest's refusal is known.
    expect(s.isolated('local-7')).toBe(true);
    expect(s.withheld('local-7')).toBe(false);
    s.answered([['serial-9', true]]);
    expect(s.withheld('serial-9')).toBe(false);
    expect(s.isolated('serial-9')).toBe(false);
  });

  it('keeps at most maxIsolated devices apart, forgetting the oldest first', () => {
    const s = new ChildStanding({ gatewayId: 'gw-1', maxIsolated: 3 });
    s.isolate(['a', 'b', 'c']);
    s.isolate(['d']);
    expect(s.isolatedDevices).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((id) => s.isolated(id))).toEqual([false, true, true, true]);
  });
});
