import { describe, expect, it } from 'vitest';
import type { AlertWrite } from './alert-store.js';
import {
  evaluate,
  INITIAL_STATE,
  type Input,
  type RuleState,
  type Transition,
} from './evaluate.js';
import { acknowledgedMessage, summarize, transitionMessage } from './notification.js';
import { compileRule, type RuleRecord, type RuleSpec } from './rule.js';

// Unit: messages built from real evaluate() transitions. Nothing mocked.

const S = 1000;
const T0 = Date.parse('2025-03-01T12:00:00Z');

const threshold: RuleSpec = {
  kind: 'threshold',
  metric: 'temperature',
  above: 90,
  clearBelow: 85,
  forMs: 30 * S,
  clearForMs: 10 * S,
  scope: {},
  severity: 'critical',
  channels: [],
  backfill: 'record',
  flap: { fires: 3, windowMs: 600 * S },
};

const record = (spec: RuleSpec): RuleRecord => ({
  id: 'r1',
  name: 'boiler hot',
  enabled: true,
  spec,
  createdBy: 't',
  createdAt: T0,
  updatedAt: T0,
  deletedAt: null,
});

function transitions(spec: RuleSpec, steps: [Input | null, number][]): Transition[] {
  const rule = compileRule(spec, T0);
  let state: RuleState = INITIAL_STATE;
  const out: Transition[] = [];
  for (const [input, sec] of steps) {
    const e = evaluate(rule, input, state, T0 + sec * S);
    out.push(...e.transitions);
    state = e.state;
  }
  return out;
}

const reading = (sec: number, value: number, backfilled = false): Input => ({
  kind: 'reading',
  timeMs: T0 + sec * S,
  value,
  backfilled,
  unsynced: false,
});

function written(t: Transition): AlertWrite {
  return {
    id: 'a1',
    ruleId: 'r1',
    device: 'boiler-7',
    metric: 'temperature',
    severity: 'critical',
    status: t.alert.status,
    openedAt: t.alert.openedAt,
    firedAt: t.alert.firedAt,
    closedAt: t.alert.closedAt,
    value: t.alert.value,
    peak: t.alert.peak,
    paged: t.alert.paged,
    quiet: t.alert.quiet,
    flapping: t.alert.flapping,
    flaps: t.alert.flaps,
    summary: '',
    updatedAt: t.at,
  };
}

describe('alert messages', () => {
  const lifecycle = transitions(threshold, [
    [reading(0, 93.5), 0],
    [reading(20, 97.25), 20],
    [reading(40, 95), 40],
    [reading(700, 84), 700],
    [null, 710],
  ]);

  it('explains each transition in one line with its values and durations', () => {
    expect(lifecycle.map((t) => summarize(t, written(t), threshold))).toEqual([
      'temperature on boiler-7 is 93.5, above 90; fires if it stays above for 30s',
      'temperature on boiler-7 above 90 for 30s (now 97.25, peak 97.25)',
      'temperature on boiler-7 back below 85 for 10s (now 84); firing lasted 11m20s, peak 97.25',
    ]);
  });

  it('carries the numbers for machines: limits, durations, incident length', () => {
    const resolved = lifecycle[2]!;
    const message = transitionMessage('n1', resolved, written(resolved), record(threshold));
    expect(message).toMatchObject({
      v: 1,
      id: 'n1',
      type: 'alert.resolved',
      at: '2025-03-01T12:11:50.000Z',
      alert: {
        id: 'a1',
        ruleId: 'r1',
        ruleName: 'boiler hot',
        device: 'boiler-7',
        state: 'resolved',
        openedAt: '2025-03-01T12:00:00.000Z',
        firedAt: '2025-03-01T12:00:30.000Z',
        closedAt: '2025-03-01T12:11:50.000Z',
        paged: true,
      },
      explain: {
        condition: 'temperature > 90 for 30s, clears < 85 for 10s',
        limit: 90,
        clearLimit: 85,
        for: '30s',
        clearFor: '10s',
        value: 84,
        heldMs: 10 * S,
        incidentMs: 680 * S,
        peak: 97.25,
        timer: true,
        reason: 'condition',
      },
      acknowledged: null,
    });
  });

  it('says when backfilled data was recorded without paging, and when it is paged late', () => {
    const spec: RuleSpec = { ...threshold, forMs: 0, clearBelow: undefined, clearForMs: 0 };
    const [quiet, late] = transitions(spec, [
      [reading(0, 95, true), 0],
      [reading(60, 96), 60],
    ]);
    expect(summarize(quiet!, written(quiet!), spec)).toBe(
      'temperature on boiler-7 is 95, above 90; recorded from backfilled data, not paged',
    );
    expect(summarize(late!, written(late!), spec)).toBe(
      'temperature on boiler-7 still above 90 (now 96); first seen in backfilled data at 2025-03-01T12:00:00.000Z',
    );
  });

  it('says when an alert starts flapping and how it will behave', () => {
    const spec: RuleSpec = { ...threshold, forMs: 0, clearForMs: 0 };
    const fired = transitions(spec, [
      [reading(0, 95), 0],
      [reading(10, 80), 10],
      [reading(20, 95), 20],
      [reading(30, 80), 30],
      [reading(40, 95), 40],
    ]).at(-1)!;
    expect(summarize(fired, written(fired), spec)).toBe(
      'temperature on boiler-7 is 95, above 90; flapping: fired 3 times in 10m, stays open until clear for 10m',
    );
  });

  it('explains offline alerts by the silence', () => {
    const spec: RuleSpec = {
      kind: 'offline',
      afterMs: 300 * S,
      scope: {},
      severity: 'warning',
      channels: [],
    };
    const [fired, resolved] = transitions(spec, [
      [{ kind: 'seen', at: T0 }, 0],
      [null, 400],
      [{ kind: 'seen', at: T0 + 3600 * S }, 3600],
    ]);
    expect(summarize(fired!, written(fired!), spec)).toBe(
      'boiler-7: no reading or state for 6m40s (last heard 2025-03-01T12:00:00.000Z)',
    );
    expect(summarize(resolved!, written(resolved!), spec)).toBe(
      'boiler-7 heard from again after 1h of silence; alert lasted 55m',
    );
  });

  it('explains an acknowledgement by who and after how long', () => {
    const fired = lifecycle[1]!;
    const alert = {
      ...written(fired),
      ruleName: 'boiler hot',
      acknowledgedAt: T0 + 150 * S,
      acknowledgedBy: 'ops-alice',
    };
    const message = acknowledgedMessage('n2', alert, record(threshold));
    expect(message.summary).toBe('boiler hot on boiler-7 acknowledged by ops-alice after 2m');
    expect(message.acknowledged).toEqual({ at: '2025-03-01T12:02:30.000Z', by: 'ops-alice' });
  });
});
