import { describe, expect, it } from 'vitest';
import {
  compileRule,
  describeCondition,
  durationText,
  formatDuration,
  type RuleSpec,
  ruleProblems,
  scopeMatcher,
  type ThresholdSpec,
} from './rule.js';

// Unit: pure rule helpers.

const base: ThresholdSpec = {
  kind: 'threshold',
  metric: 'temperature',
  forMs: 0,
  clearForMs: 0,
  scope: {},
  severity: 'warning',
  channels: [],
  backfill: 'record',
  flap: null,
};

describe('ruleProblems', () => {
  it.each<[string, Partial<ThresholdSpec>, string[]]>([
    ['a plain above rule', { above: 90 }, []],
    ['hysteresis on the right side', { above: 90, clearBelow: 85 }, []],
    ['a clear limit equal to the limit', { above: 90, clearBelow: 90 }, []],
    [
      'a clear limit above an above limit',
      { above: 90, clearBelow: 95 },
      [
        'clearBelow 95 is above the limit 90: an alert raised above 90 would clear while still above it; use a clearBelow at or below 90',
      ],
    ],
    [
      'a clear limit below a below limit',
      { below: 10, clearAbove: 5 },
      [
        'clearAbove 5 is below the limit 10: an alert raised below 10 would clear while still below it; use a clearAbove at or above 10',
      ],
    ],
    [
      'the clear key of the other direction',
      { below: 10, clearBelow: 5 },
      ['clearBelow belongs to an above rule; a below rule clears with clearAbove'],
    ],
    ['no limit', {}, ['give a limit: above or below']],
    [
      'two limits',
      { above: 10, below: 5 },
      ['give one limit, above or below, not both: use two rules for a band'],
    ],
  ])('%s', (_name, over, problems) => {
    expect(ruleProblems({ ...base, ...over })).toEqual(problems);
  });

  it('finds nothing wrong with an offline rule', () => {
    const offline: RuleSpec = {
      kind: 'offline',
      afterMs: 60_000,
      scope: {},
      severity: 'info',
      channels: [],
    };
    expect(ruleProblems(offline)).toEqual([]);
    expect(compileRule(offline, 5)).toEqual({ kind: 'offline', afterMs: 60_000, watchingSince: 5 });
  });
});

describe('compileRule and describeCondition', () => {
  it('turns above/below and the clear key into one comparison', () => {
    expect(compileRule({ ...base, below: 3, clearAbove: 5, rateMs: 60_000 }, 0)).toMatchObject({
      comparison: 'below',
      limit: 3,
      clearLimit: 5,
      rateMs: 60_000,
    });
    expect(compileRule({ ...base, above: 1, backfill: 'page' }, 0)).toMatchObject({
      clearLimit: null,
      rateMs: null,
      pageBackfill: true,
    });
  });

  it.each<[Partial<ThresholdSpec>, string]>([
    [{ above: 90 }, 'temperature > 90'],
    [
      { above: 90, clearBelow: 85, forMs: 30_000, clearForMs: 60_000 },
      'temperature > 90 for 30s, clears < 85 for 1m',
    ],
    [{ below: 5, clearForMs: 10_000 }, 'temperature < 5, clears >= 5 for 10s'],
    [{ above: 2, rateMs: 60_000 }, 'change of temperature per 1m > 2'],
  ])('%j reads %s', (over, text) => {
    expect(describeCondition({ ...base, ...over })).toBe(text);
  });
});

describe('scopeMatcher', () => {
  it('needs every criterion: devices, gateway (itself or behind it) and tags', () => {
    const match = scopeMatcher({ devices: ['a', 'gw'], gateway: 'gw', tags: { site: 'x' } });
    expect(match('a', { site: 'x' }, 'gw')).toBe(true);
    expect(match('gw', { site: 'x' }, 'gw')).toBe(true);
    expect(match('a', { site: 'y' }, 'gw')).toBe(false);
    expect(match('a', { site: 'x' }, 'a')).toBe(false);
    expect(match('b', { site: 'x' }, 'gw')).toBe(false);
    expect(scopeMatcher({})('anything', {}, 'anyone')).toBe(true);
  });
});

describe('durations', () => {
  it('reads well and reads back', () => {
    expect(formatDuration(90_061_000)).toBe('1d1h1m1s');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(0)).toBe('0s');
    expect([900_000, 90_000, 1500, 0, 7_200_000].map(durationText)).toEqual([
      '15m',
      '90s',
      '1500ms',
      '0s',
      '2h',
    ]);
  });
});
