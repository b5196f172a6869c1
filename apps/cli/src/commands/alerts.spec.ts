import { describe, expect, it } from 'vitest';
import type { Alert, AlertRule } from '../api-schemas.js';
import { UsageError } from '../errors.js';
import { renderTable } from '../output.js';
import { alertColumns, ruleBody, ruleColumns, scopeText } from './alerts.js';

// Unit: flag combinations to request bodies, and the tables. No server.

describe('rules add', () => {
  it('builds a threshold rule from the flags, with hysteresis, for, scope and webhooks', () => {
    expect(
      ruleBody({
        metric: 'temperature',
        above: 90,
        clearBelow: 85,
        for: 30,
        tag: [['site', 'berlin']],
        device: ['boiler-7', 'boiler-7'],
        webhook: ['https://hooks.example/outpost'],
        severity: 'critical',
        flap: true,
      }),
    ).toEqual({
      kind: 'threshold',
      metric: 'temperature',
      above: 90,
      clearBelow: 85,
      for: 30,
      scope: { devices: ['boiler-7'], tags: { site: 'berlin' } },
      severity: 'critical',
      channels: [{ type: 'webhook', url: 'https://hooks.example/outpost' }, { type: 'log' }],
    });
  });

  it('turns flap suppression off and pages on backfill when asked', () => {
    expect(ruleBody({ metric: 'x', below: 1, flap: false, pageBackfill: true })).toMatchObject({
      below: 1,
      flap: null,
      backfill: 'page',
    });
  });

  it('builds an offline rule', () => {
    expect(ruleBody({ offline: 300, gateway: 'gw-1', flap: true })).toEqual({
      kind: 'offline',
      after: 300,
      scope: { gateway: 'gw-1' },
      channels: [{ type: 'log' }],
    });
  });

  it.each([
    [{}, 'say what to watch'],
    [{ metric: 'x' }, 'give one limit'],
    [{ metric: 'x', above: 1, below: 0 }, 'give one limit'],
    [{ offline: 60, metric: 'x' }, '--offline watches silence, not a metric'],
    [
      {
        metric: 'x',
        above: 1,
        tag: [
          ['a', '1'],
          ['a', '2'],
        ] as [string, string][],
      },
      '--tag a is given twice',
    ],
  ])('refuses %j: %s', (flags, message) => {
    expect(() => ruleBody({ flap: true, ...flags })).toThrow(UsageError);
    expect(() => ruleBody({ flap: true, ...flags })).toThrow(message);
  });
});

const rule: AlertRule = {
  id: 'r1',
  name: 'boiler hot',
  kind: 'threshold',
  enabled: true,
  condition: 'temperature > 90 for 30s, clears < 85',
  scope: { tags: { site: 'berlin' } },
  severity: 'critical',
  channels: [{ type: 'webhook', url: 'https://hooks.example/x' }],
};

describe('rules list', () => {
  it('shows the condition and the scope in words', () => {
    expect(renderTable([rule], ruleColumns())).toBe(
      [
        'ID  NAME        CONDITION                              SCOPE        SEVERITY  ENABLED',
        'r1  boiler hot  temperature > 90 for 30s, clears < 85  site=berlin  critical  yes',
      ].join('\n'),
    );
    expect(scopeText({})).toBe('all devices');
    expect(scopeText({ devices: ['a', 'b'], gateway: 'gw' })).toBe('devices=a,b gateway=gw');
  });
});

describe('alerts list', () => {
  const now = Date.parse('2025-03-01T12:10:00Z');
  const alert: Alert = {
    id: 'a1',
    ruleId: 'r1',
    ruleName: 'boiler hot',
    device: 'boiler-7',
    severity: 'critical',
    state: 'firing',
    openedAt: '2025-03-01T12:00:00Z',
    firedAt: '2025-03-01T12:00:30Z',
    closedAt: null,
    summary: 'temperature on boiler-7 above 90 for 30s (now 93.5, peak 95)',
    acknowledgedAt: null,
    acknowledgedBy: null,
  };

  it('shows state, device, rule, how long and the explanation', () => {
    expect(renderTable([alert], alertColumns(now)).split('\n')[1]).toBe(
      'a1  firing  critical  boiler-7  boiler hot  9m ago  temperature on boiler-7 above 90 for 30s (now 93.5, peak 95)',
    );
    const acked = { ...alert, acknowledgedAt: '2025-03-01T12:05:00Z', acknowledgedBy: 'ops' };
    expect(renderTable([acked], alertColumns(now))).toContain('firing (ack)');
  });
});
