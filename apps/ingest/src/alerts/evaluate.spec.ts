import { describe, expect, it } from 'vitest';
import {
  type Evaluation,
  evaluate,
  INITIAL_STATE,
  type Input,
  type OfflineRule,
  persistentChange,
  type RuleState,
  type ThresholdRule,
} from './evaluate.js';

// Unit: the pure state machine. Nothing real, nothing mocked: inputs in, state out.

const S = 1000;
const T0 = 1_700_000_000_000;

const threshold = (over: Partial<ThresholdRule> = {}): ThresholdRule => ({
  kind: 'threshold',
  comparison: 'above',
  limit: 90,
  clearLimit: null,
  forMs: 0,
  clearForMs: 0,
  rateMs: null,
  pageBackfill: false,
  flap: null,
  ...over,
});

/** A step: a reading `[seconds, value, flags]` or a timer tick `['tick', seconds]`. */
type Step =
  | readonly [number, number | boolean | string]
  | readonly [number, number | boolean | string, 'bf' | 'unsynced']
  | readonly ['tick', number]
  | readonly ['at', number, number | boolean | string, number];

function reading(sec: number, value: number | boolean | string, flag?: 'bf' | 'unsynced'): Input {
  return {
    kind: 'reading',
    timeMs: T0 + sec * S,
    value,
    backfilled: flag === 'bf',
    unsynced: flag === 'unsynced',
  };
}

/** Runs the steps; returns each transition as `kind@seconds`, `+page` when it pages. */
function run(rule: ThresholdRule | OfflineRule, steps: readonly Step[], start = INITIAL_STATE) {
  let state = start;
  const seen: string[] = [];
  const evaluations: Evaluation[] = [];
  for (const step of steps) {
    let e: Evaluation;
    if (step[0] === 'tick') e = evaluate(rule, null, state, T0 + step[1] * S);
    else if (step[0] === 'at') {
      // A reading stamped `step[1]` arriving at `step[3]`.
      e = evaluate(rule, reading(step[1], step[2]), state, T0 + step[3] * S);
    } else {
      const [sec, value, flag] = step as readonly [number, number, 'bf' | 'unsynced' | undefined];
      e = evaluate(rule, reading(sec, value, flag), state, T0 + sec * S);
    }
    evaluations.push(e);
    for (const t of e.transitions)
      seen.push(`${t.kind}@${(t.at - T0) / S}${t.page ? '+page' : ''}`);
    state = e.state;
  }
  return { seen, state, evaluations };
}

describe('evaluate: threshold rules', () => {
  it.each<[string, Partial<ThresholdRule>, readonly Step[], string[]]>([
    ['fires at once without for', {}, [[0, 95]], ['firing@0+page']],
    ['stays quiet at the limit (above is strict)', {}, [[0, 90]], []],
    [
      'resolves as soon as the limit is no longer crossed, without hysteresis',
      {},
      [
        [0, 95],
        [10, 90],
      ],
      ['firing@0+page', 'resolved@10+page'],
    ],
    [
      'hysteresis: stays firing between the clear limit and the limit',
      { clearLimit: 85 },
      [
        [0, 95],
        [10, 88],
        [20, 91],
        [30, 85],
        [40, 84.9],
      ],
      ['firing@0+page', 'resolved@40+page'],
    ],
    [
      'hysteresis: no second fire while the value wobbles around the limit',
      { clearLimit: 80 },
      [
        [0, 91],
        [10, 89],
        [20, 91],
        [30, 89],
        [40, 91],
      ],
      ['firing@0+page'],
    ],
    [
      'for: pending first, fires once the condition held for 30s',
      { forMs: 30 * S },
      [
        [0, 95],
        [10, 96],
        [20, 97],
        [30, 95],
        [40, 99],
      ],
      ['pending@0', 'firing@30+page'],
    ],
    [
      'for: cancelled when the condition stops before it elapses',
      { forMs: 30 * S },
      [
        [0, 95],
        [20, 89],
        [25, 95],
      ],
      ['pending@0', 'cancelled@20', 'pending@25'],
    ],
    [
      'for: a timer fires when readings are sparse, at the exact elapsed time',
      { forMs: 30 * S },
      [
        [0, 95],
        ['tick', 29],
        ['tick', 31],
      ],
      ['pending@0', 'firing@30+page'],
    ],
    [
      'for: a late reading decides the same as a timer would have',
      { forMs: 30 * S },
      [
        [0, 95],
        [45, 80],
      ],
      ['pending@0', 'firing@30+page', 'resolved@45+page'],
    ],
    [
      'clearFor: resolves only after the clear condition held for 20s',
      { clearLimit: 85, clearForMs: 20 * S },
      [
        [0, 95],
        [10, 80],
        [20, 91],
        [30, 80],
        [40, 80],
        [50, 80],
      ],
      ['firing@0+page', 'resolved@50+page'],
    ],
    [
      'clearFor: a timer resolves too',
      { clearForMs: 20 * S },
      [
        [0, 95],
        [10, 80],
        ['tick', 29],
        ['tick', 30],
      ],
      ['firing@0+page', 'resolved@30+page'],
    ],
    [
      'flapping: the third fire in the window holds the alert open until quiet for the window',
      { flap: { fires: 3, windowMs: 600 * S } },
      [
        [0, 95],
        [10, 80],
        [20, 95],
        [30, 80],
        [40, 95],
        [50, 80],
        [60, 95],
        [70, 80],
        ['tick', 669],
        ['tick', 670],
      ],
      [
        'firing@0+page',
        'resolved@10+page',
        'firing@20+page',
        'resolved@30+page',
        'firing@40+page',
        'resolved@670+page',
      ],
    ],
    [
      'flapping: fires spread wider than the window do not count',
      { flap: { fires: 3, windowMs: 60 * S } },
      [
        [0, 95],
        [10, 80],
        [40, 95],
        [50, 80],
        [100, 95],
        [110, 80],
      ],
      [
        'firing@0+page',
        'resolved@10+page',
        'firing@40+page',
        'resolved@50+page',
        'firing@100+page',
        'resolved@110+page',
      ],
    ],
    [
      'out of order: an older reading is ignored',
      {},
      [
        [100, 80],
        [50, 95],
        [101, 80],
      ],
      [],
    ],
    [
      'backfilled: recorded, not paged; the resolve of a quiet alert does not page either',
      {},
      [
        [0, 95, 'bf'],
        [10, 80, 'bf'],
      ],
      ['firing@0', 'resolved@10'],
    ],
    [
      'backfilled then live data still over the limit: paged late, once',
      {},
      [
        [0, 95, 'bf'],
        [10, 96, 'bf'],
        [20, 97],
        [30, 98],
        [40, 80],
      ],
      ['firing@0', 'firing@20+page', 'resolved@40+page'],
    ],
    [
      'backfilled with a rule that asks to page on it',
      { pageBackfill: true },
      [[0, 95, 'bf']],
      ['firing@0+page'],
    ],
    [
      'backfilled for: a pending timer on backfilled evidence fires quietly',
      { forMs: 30 * S },
      [
        [0, 95, 'bf'],
        [40, 96, 'bf'],
      ],
      ['pending@0', 'firing@30'],
    ],
    [
      'below with clearAbove',
      { comparison: 'below', limit: 10, clearLimit: 15 },
      [
        [0, 12],
        [10, 9],
        [20, 14],
        [30, 15.5],
      ],
      ['firing@10+page', 'resolved@30+page'],
    ],
    [
      'booleans compare as 1 and 0',
      { limit: 0.5 },
      [
        [0, false],
        [10, true],
        [20, false],
      ],
      ['firing@10+page', 'resolved@20+page'],
    ],
    ['text cannot cross a limit', {}, [[0, 'hot']], []],
    [
      'rate of change per minute',
      { limit: 5, rateMs: 60 * S },
      [
        [0, 20],
        [60, 24],
        [120, 31],
        [180, 33],
      ],
      ['firing@120+page', 'resolved@180+page'],
    ],
  ])('%s', (_name, over, steps, expected) => {
    expect(run(threshold(over), steps).seen).toEqual(expected);
  });

  it('uses arrival time for readings from an unsynced clock, and caps future times at now', () => {
    const rule = threshold({ forMs: 30 * S });
    const first = evaluate(rule, reading(-3600, 95, 'unsynced'), INITIAL_STATE, T0);
    expect(first.transitions[0]).toMatchObject({ kind: 'pending', at: T0 });
    const future = evaluate(rule, reading(3600, 95), INITIAL_STATE, T0);
    expect(future.transitions[0]).toMatchObject({ kind: 'pending', at: T0 });
  });

  it('explains a fire: the value, how long it held, and the peak', () => {
    const { evaluations } = run(threshold({ forMs: 30 * S }), [
      [0, 95],
      [10, 99],
      [31, 93],
    ]);
    const fired = evaluations[2]!.transitions[0]!;
    expect(fired).toMatchObject({
      kind: 'firing',
      at: T0 + 30 * S,
      page: true,
      why: { heldMs: 30 * S, timer: true, value: 99 },
      alert: { status: 'firing', openedAt: T0, firedAt: T0 + 30 * S, value: 95, peak: 99 },
    });
  });

  it('explains a resolve: how long the incident lasted and how long it stayed clear', () => {
    const { evaluations } = run(threshold({ clearLimit: 85, clearForMs: 10 * S }), [
      [0, 95],
      [60, 97],
      [600, 80],
      [610, 79],
    ]);
    expect(evaluations[3]!.transitions[0]).toMatchObject({
      kind: 'resolved',
      page: true,
      why: { incidentMs: 610 * S, heldMs: 10 * S, value: 80, timer: true },
      alert: { status: 'resolved', peak: 97, closedAt: T0 + 610 * S },
    });
  });

  it('marks the fire that starts flapping and counts the re-breaches it absorbs', () => {
    const rule = threshold({ flap: { fires: 2, windowMs: 600 * S } });
    const { evaluations, state } = run(rule, [
      [0, 95],
      [10, 80],
      [20, 95],
      [30, 80],
      [40, 95],
      [50, 80],
    ]);
    expect(evaluations[2]!.transitions[0]).toMatchObject({
      kind: 'firing',
      alert: { flapping: true },
      why: { fires: 2 },
    });
    expect(state.alert).toMatchObject({ status: 'firing', flapping: true, flaps: 1 });
  });

  it('never changes the state it was given', () => {
    const rule = threshold({ forMs: 30 * S, rateMs: null });
    const before = run(rule, [[0, 95]]).state;
    const copy = structuredClone(before);
    evaluate(rule, reading(40, 80), before, T0 + 40 * S);
    evaluate(rule, null, before, T0 + 40 * S);
    expect(before).toEqual(copy);
  });

  it('retires: a pending alert is cancelled, a firing one resolved, paging as it paged', () => {
    const pending = run(threshold({ forMs: 30 * S }), [[0, 95]]).state;
    const r1 = evaluate(threshold(), { kind: 'retire', reason: 'rule_deleted' }, pending, T0 + S);
    expect(r1.transitions.map((t) => [t.kind, t.page, t.why.reason])).toEqual([
      ['cancelled', false, 'rule_deleted'],
    ]);
    const firing = run(threshold(), [[0, 95]]).state;
    const r2 = evaluate(
      threshold(),
      { kind: 'retire', reason: 'rule_changed' },
      firing,
      T0 + 5 * S,
    );
    expect(r2.transitions.map((t) => [t.kind, t.page, t.why.incidentMs])).toEqual([
      ['resolved', true, 5 * S],
    ]);
    expect(r2.state.phase).toBe('ok');
    expect(
      evaluate(threshold(), { kind: 'retire', reason: 'rule_disabled' }, INITIAL_STATE, T0),
    ).toMatchObject({ transitions: [] });
  });
});

describe('evaluate: offline rules', () => {
  const rule: OfflineRule = { kind: 'offline', afterMs: 300 * S, watchingSince: T0 };
  const seen = (sec: number): Input => ({ kind: 'seen', at: T0 + sec * S });

  it('fires after the silence, once, and resolves when the device is heard from', () => {
    let state: RuleState = INITIAL_STATE;
    const steps: [Input | null, number][] = [
      [seen(10), 10],
      [null, 309],
      [null, 310],
      [null, 400],
      [seen(1000), 1000],
    ];
    const out: string[] = [];
    for (const [input, sec] of steps) {
      const e = evaluate(rule, input, state, T0 + sec * S);
      for (const t of e.transitions) {
        out.push(`${t.kind}@${(t.at - T0) / S} silent=${t.why.silentMs! / S}`);
      }
      state = e.state;
    }
    expect(out).toEqual(['firing@310 silent=300', 'resolved@1000 silent=990']);
  });

  it('counts silence from when watching began, not from a last-seen time before it', () => {
    const late: OfflineRule = { ...rule, watchingSince: T0 + 3600 * S };
    const e1 = evaluate(late, seen(0), INITIAL_STATE, T0 + 3700 * S);
    expect(e1.transitions).toEqual([]);
    const e2 = evaluate(late, null, e1.state, T0 + 3900 * S);
    expect(e2.transitions[0]).toMatchObject({ kind: 'firing', at: T0 + 3900 * S });
  });

  it('does not resolve on old news: a last-seen time from before it fired', () => {
    const fired = evaluate(rule, seen(0), INITIAL_STATE, T0 + 400 * S).state;
    expect(fired.phase).toBe('firing');
    expect(evaluate(rule, seen(0), fired, T0 + 500 * S).transitions).toEqual([]);
    const back = evaluate(
      rule,
      { kind: 'reading', timeMs: T0, value: 1, backfilled: true, unsynced: false },
      fired,
      T0 + 500 * S,
    );
    expect(back.transitions[0]).toMatchObject({ kind: 'resolved', at: T0 + 500 * S });
  });
});

describe('persistentChange', () => {
  it('ignores the latest value alone and sees phase, timers, peak and alert changes', () => {
    const rule = threshold({ forMs: 30 * S });
    const pending = run(rule, [[0, 95]]).state;
    const later = evaluate(rule, reading(10, 94), pending, T0 + 10 * S).state;
    expect(persistentChange(pending, later)).toBe(false);
    const peak = evaluate(rule, reading(10, 97), pending, T0 + 10 * S).state;
    expect(persistentChange(pending, peak)).toBe(true);
    expect(persistentChange(INITIAL_STATE, pending)).toBe(true);
    const fired = evaluate(rule, null, pending, T0 + 30 * S).state;
    expect(persistentChange(pending, fired)).toBe(true);
  });
});
