import { describe, expect, it } from 'vitest';
import type { RolloutDevice, RolloutProgress } from '../ota-schemas.js';
import {
  createBody,
  renderRollout,
  rolloutLine,
  targetBody,
  targetSpecSchema,
  wavesSchema,
} from './rollout.js';

const parseTarget = (s: string) => targetSpecSchema.parse(s);

describe('rollout create flags', () => {
  it('parses targets: tags, devices and children of gateways', () => {
    expect(parseTarget('tag=site=north')).toEqual({ kind: 'tag', tag: ['site', 'north'] });
    expect(parseTarget('tag=note=a=b')).toEqual({ kind: 'tag', tag: ['note', 'a=b'] });
    expect(parseTarget('device=boiler-7')).toEqual({ kind: 'device', id: 'boiler-7' });
    expect(parseTarget('gateway=gw-1')).toEqual({ kind: 'gateway', id: 'gw-1' });
    for (const bad of ['site=north', 'boiler-7', 'device=Bad/Id', 'tag=novalue', 'group=x']) {
      expect(targetSpecSchema.safeParse(bad).success, bad).toBe(false);
    }
  });

  it('combines targets into the API body; a tag key given twice differently is a mistake', () => {
    const specs = ['tag=site=north', 'tag=line=2', 'device=a', 'device=a', 'gateway=gw'].map(
      parseTarget,
    );
    expect(targetBody(specs)).toEqual({
      tags: { site: 'north', line: '2' },
      devices: ['a'],
      gateways: ['gw'],
    });
    expect(() => targetBody(['tag=site=a', 'tag=site=b'].map(parseTarget))).toThrow(/twice/);
  });

  it('parses waves: ascending percentages ending at 100', () => {
    expect(wavesSchema.parse('5, 25,100')).toEqual([5, 25, 100]);
    expect(wavesSchema.parse('100')).toEqual([100]);
    for (const bad of ['5,25', '25,5,100', '0,100', 'a,100', '50,150']) {
      expect(wavesSchema.safeParse(bad).success, bad).toBe(false);
    }
  });

  it('sends only what was given, seconds for durations', () => {
    expect(
      createBody({
        firmware: 'fw-1',
        target: [parseTarget('tag=site=north')],
        waves: [5, 25, 100],
        soak: 600,
        abortFailureRate: 0.1,
        minDevices: 5,
        offerTimeout: 60,
      }),
    ).toEqual({
      firmwareId: 'fw-1',
      target: { tags: { site: 'north' } },
      waves: [5, 25, 100],
      soakSeconds: 600,
      abortFailureRate: 0.1,
      minDevices: 5,
      offerTimeoutSeconds: 60,
    });
  });
});

const counts = (c: Partial<RolloutProgress['totals']> = {}) => ({
  pending: 0,
  offered: 0,
  updating: 0,
  succeeded: 0,
  failed: 0,
  rolledBack: 0,
  ...c,
});

const rollout: RolloutProgress = {
  id: 'r-1',
  firmwareId: 'fw-1',
  component: 'main',
  version: '1.2.0',
  status: 'running',
  reason: null,
  currentWave: 1,
  plan: { waves: [10, 50, 100] },
  createdAt: '2025-01-01T00:00:00Z',
  finishedAt: null,
  waves: [
    {
      index: 0,
      percent: 10,
      devices: 2,
      phase: 'done',
      soakUntil: null,
      counts: counts({ succeeded: 2 }),
    },
    {
      index: 1,
      percent: 50,
      devices: 8,
      phase: 'active',
      soakUntil: null,
      counts: counts({ succeeded: 4, rolledBack: 1, updating: 2, offered: 1 }),
    },
    {
      index: 2,
      percent: 100,
      devices: 10,
      phase: 'pending',
      soakUntil: null,
      counts: counts({ pending: 10 }),
    },
  ],
  totals: {
    ...counts({ succeeded: 6, rolledBack: 1, updating: 2, offered: 1, pending: 10 }),
    devices: 20,
    finished: 7,
  },
};

const failed: RolloutDevice = {
  deviceId: 'a-07',
  wave: 1,
  state: 'rolled_back',
  reason: 'health check failed',
  detail: null,
  version: '1.1.0',
  updatedAt: '2025-01-01T00:01:00Z',
};

describe('rollout status', () => {
  it('shows each wave with a bar, the totals, and failed devices with their reasons', () => {
    expect(renderRollout(rollout, [failed], Date.parse('2025-01-01T00:02:00Z'))).toBe(
      [
        'rollout r-1: main 1.2.0, running, wave 2 of 3',
        '  wave  1   10%   2 devices  [####################]  done       2 ok',
        '  wave  2   50%   8 devices  [#############.......]  active     4 ok, 1 rolled back, 3 updating',
        '  wave  3  100%  10 devices  [....................]  pending    0 ok, 10 pending',
        '  total         20 devices  [#######.............]  6 ok, 1 rolled back, 3 updating, 10 pending',
        'failed devices:',
        '  a-07  rolled_back  health check failed',
      ].join('\n'),
    );
  });

  it('says when the next wave starts while a wave soaks, and why a rollout aborted', () => {
    const soaking = {
      ...rollout,
      status: 'aborted',
      reason: 'failure rate 40% (2 of 5 finished devices) exceeds 20%',
      waves: [{ ...rollout.waves[0]!, phase: 'soaking', soakUntil: '2025-01-01T00:10:00Z' }],
    };
    const text = renderRollout(soaking, [], Date.parse('2025-01-01T00:05:00Z'));
    expect(text).toContain('rollout r-1: main 1.2.0, aborted\n  failure rate 40%');
    expect(text).toContain('soaking (next wave in 5m)');
  });

  it('has a one-line form for pipes', () => {
    expect(rolloutLine(rollout)).toBe(
      'rollout r-1: running, wave 2/3 active, 6 ok, 1 rolled back, 3 updating, 10 pending',
    );
  });
});
