import { describe, expect, it } from 'vitest';
import {
  applyActions,
  applyReport,
  applyToDevices,
  type ControlCommand,
  control,
  type DeviceProgress,
  type DeviceState,
  evaluate,
  initialState,
  orderTargets,
  type RolloutAction,
  type RolloutPlan,
  type RolloutState,
  type RolloutStatus,
  summarize,
  waveEnds,
} from './rollout.js';

const T0 = 1_000_000;
const SOAK = 60_000;
const OFFER_TIMEOUT = 600_000;
const UPDATE_TIMEOUT = 3_600_000;

const PLAN: RolloutPlan = {
  waves: [10, 50, 100],
  soakMs: SOAK,
  abortFailureRate: 0.2,
  minDevices: 5,
  offerTimeoutMs: OFFER_TIMEOUT,
  updateTimeoutMs: UPDATE_TIMEOUT,
};

const id = (i: number) => `d${String(i).padStart(2, '0')}`;

/** Ten devices (waves end at 1, 5, 10): the given states first, the rest pending. */
function devices(states: readonly DeviceState[], n = 10, updatedAt = T0): DeviceProgress[] {
  return Array.from({ length: n }, (_, i) => ({
    deviceId: id(i),
    state: states[i] ?? 'pending',
    reason: null,
    updatedAt,
  }));
}

/** A running rollout whose waves up to `current` started at T0 and before it completed. */
function at(
  current: number,
  extra: { completed?: number | null; status?: RolloutStatus; waves?: number } = {},
): RolloutState {
  const count = extra.waves ?? PLAN.waves.length;
  return {
    status: extra.status ?? 'running',
    currentWave: current,
    waves: Array.from({ length: count }, (_, i) => ({
      startedAt: i <= current ? T0 : null,
      completedAt: i < current ? T0 : i === current ? (extra.completed ?? null) : null,
    })),
    reason: null,
    finishedAt: null,
  };
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => id(from + i));
const S = 'succeeded' as const;
const F = 'failed' as const;
const RB = 'rolled_back' as const;

interface Row {
  name: string;
  plan?: Partial<RolloutPlan>;
  state: RolloutState;
  devices: DeviceProgress[];
  now: number;
  expected: RolloutAction[];
}

const table: Row[] = [
  {
    name: 'a new rollout starts its first wave and offers it',
    state: initialState(PLAN),
    devices: devices([]),
    now: T0,
    expected: [
      { type: 'wave_started', wave: 0, at: T0 },
      { type: 'offer', wave: 0, deviceIds: [id(0)], at: T0 },
    ],
  },
  {
    name: 'waits while the wave updates',
    state: at(0),
    devices: devices(['downloading']),
    now: T0 + 1000,
    expected: [],
  },
  {
    name: 'marks a wave complete once all its devices finished, then soaks',
    state: at(0),
    devices: devices([S]),
    now: T0 + 1000,
    expected: [{ type: 'wave_completed', wave: 0, at: T0 + 1000 }],
  },
  {
    name: 'does not start the next wave before the soak has passed',
    state: at(0, { completed: T0 }),
    devices: devices([S]),
    now: T0 + SOAK - 1,
    expected: [],
  },
  {
    name: 'starts the next wave after the soak and offers it',
    state: at(0, { completed: T0 }),
    devices: devices([S]),
    now: T0 + SOAK,
    expected: [
      { type: 'wave_started', wave: 1, at: T0 + SOAK },
      { type: 'offer', wave: 1, deviceIds: range(1, 5), at: T0 + SOAK },
    ],
  },
  {
    name: 'a wave is not done while one device is still in trial',
    state: at(1),
    devices: devices([S, S, S, S, 'trial']),
    now: T0 + SOAK * 10,
    expected: [],
  },
  {
    name: 'with no soak the next wave starts at once',
    plan: { soakMs: 0 },
    state: at(0),
    devices: devices([S]),
    now: T0 + 5,
    expected: [
      { type: 'wave_completed', wave: 0, at: T0 + 5 },
      { type: 'wave_started', wave: 1, at: T0 + 5 },
      { type: 'offer', wave: 1, deviceIds: range(1, 5), at: T0 + 5 },
    ],
  },
  {
    name: 'the last wave finishing completes the rollout (no soak after it)',
    state: at(2),
    devices: devices(Array(10).fill(S)),
    now: T0 + 7,
    expected: [
      { type: 'wave_completed', wave: 2, at: T0 + 7 },
      { type: 'complete', at: T0 + 7 },
    ],
  },
  {
    name: 'failures over the limit after the minimum number of devices abort, offering nothing',
    state: at(0, { completed: T0 }),
    devices: devices([S, F, RB, S, S]),
    now: T0 + SOAK,
    expected: [
      {
        type: 'abort',
        reason: 'failure rate 40% (2 of 5 finished devices) exceeds 20%',
        at: T0 + SOAK,
      },
    ],
  },
  {
    name: 'a device that rolled back counts as a failure',
    state: at(1),
    devices: devices([RB, RB, S, S, S]),
    now: T0,
    expected: [
      {
        type: 'abort',
        reason: 'failure rate 40% (2 of 5 finished devices) exceeds 20%',
        at: T0,
      },
    ],
  },
  {
    name: 'failures before the minimum number of devices finished do not abort',
    state: at(1),
    devices: devices([F, F, 'downloading', 'installing', 'offered']),
    now: T0 + 1,
    expected: [],
  },
  {
    name: 'a failure rate exactly at the limit does not abort',
    state: at(1),
    devices: devices([F, S, S, S, S]),
    now: T0 + 1,
    expected: [{ type: 'wave_completed', wave: 1, at: T0 + 1 }],
  },
  {
    name: 'when fewer devices than the minimum are targeted, all of them finishing is enough',
    plan: { waves: [100], minDevices: 5 },
    state: at(0, { waves: 1 }),
    devices: devices([F, S, S], 3),
    now: T0,
    expected: [
      {
        type: 'abort',
        reason: 'failure rate 33.3% (1 of 3 finished devices) exceeds 20%',
        at: T0,
      },
    ],
  },
  {
    name: 'paused rollouts do nothing, not even timeouts',
    state: at(1, { status: 'paused' }),
    devices: devices([S, 'offered', 'offered']),
    now: T0 + OFFER_TIMEOUT * 10,
    expected: [],
  },
  {
    name: 'cancelled rollouts do nothing',
    state: at(0, { status: 'cancelled' }),
    devices: devices([]),
    now: T0,
    expected: [],
  },
  {
    name: 'aborted rollouts do nothing',
    state: at(1, { status: 'aborted' }),
    devices: devices([S, F, F, F, F]),
    now: T0 + SOAK,
    expected: [],
  },
  {
    name: 'completed rollouts do nothing',
    state: at(2, { status: 'completed', completed: T0 }),
    devices: devices(Array(10).fill(S)),
    now: T0 + SOAK,
    expected: [],
  },
  {
    name: 'an offered device that never answers (offline) fails with timeout after the offer timeout',
    state: at(0),
    devices: devices(['offered']),
    now: T0 + OFFER_TIMEOUT,
    expected: [
      { type: 'timeout', deviceIds: [id(0)], at: T0 + OFFER_TIMEOUT },
      { type: 'wave_completed', wave: 0, at: T0 + OFFER_TIMEOUT },
    ],
  },
  {
    name: 'an offered device is not timed out a moment before the offer timeout',
    state: at(0),
    devices: devices(['offered']),
    now: T0 + OFFER_TIMEOUT - 1,
    expected: [],
  },
  {
    name: 'an updating device times out only after the update timeout since its last report',
    state: at(0),
    devices: devices(['installing']),
    now: T0 + UPDATE_TIMEOUT,
    expected: [
      { type: 'timeout', deviceIds: [id(0)], at: T0 + UPDATE_TIMEOUT },
      { type: 'wave_completed', wave: 0, at: T0 + UPDATE_TIMEOUT },
    ],
  },
  {
    name: 'timeouts count as failures and can abort the rollout',
    state: at(1),
    devices: devices([S, 'offered', 'offered', 'offered', 'offered']),
    now: T0 + OFFER_TIMEOUT,
    expected: [
      { type: 'timeout', deviceIds: range(1, 5), at: T0 + OFFER_TIMEOUT },
      {
        type: 'abort',
        reason: 'failure rate 80% (4 of 5 finished devices) exceeds 20%',
        at: T0 + OFFER_TIMEOUT,
      },
    ],
  },
  {
    name: 'with few devices and many waves, a wave that adds no device is not waited for',
    state: at(1),
    devices: devices([S, S], 2),
    now: T0 + 3,
    expected: [
      { type: 'wave_completed', wave: 1, at: T0 + 3 },
      { type: 'wave_started', wave: 2, at: T0 + 3 },
      { type: 'wave_completed', wave: 2, at: T0 + 3 },
      { type: 'complete', at: T0 + 3 },
    ],
  },
  {
    name: 'a wave whose devices were not all offered yet is offered again (after a crash)',
    state: at(1),
    devices: devices([S, 'offered', 'pending', 'downloading', 'pending']),
    now: T0 + 1,
    expected: [{ type: 'offer', wave: 1, deviceIds: [id(2), id(4)], at: T0 + 1 }],
  },
];

describe('evaluate', () => {
  it.each(table)('$name', (row) => {
    const plan = { ...PLAN, ...row.plan };
    expect(evaluate(plan, row.state, row.devices, row.now)).toEqual(row.expected);
  });

  it.each(table)('is idempotent: $name', (row) => {
    const plan = { ...PLAN, ...row.plan };
    const first = evaluate(plan, row.state, row.devices, row.now);
    // The same state gives the same actions…
    expect(evaluate(plan, row.state, row.devices, row.now)).toEqual(first);
    // …and once they are applied, nothing more at the same moment.
    const state = applyActions(row.state, first);
    const after = applyToDevices(row.devices, first);
    expect(evaluate(plan, state, after, row.now)).toEqual([]);
  });

  /** Runs a rollout to its end: devices answer at once, `fails` decides how. */
  function simulate(n: number, plan: RolloutPlan, fails: (position: number) => boolean) {
    const order = orderTargets('r-1', range(0, n));
    let state = initialState(plan);
    let progress: DeviceProgress[] = order.map((deviceId) => ({
      deviceId,
      state: 'pending',
      reason: null,
      updatedAt: T0,
    }));
    const offeredPerWave: string[][] = plan.waves.map(() => []);
    let now = T0;
    for (let step = 0; step < 1000 && state.status === 'running'; step++) {
      const actions = evaluate(plan, state, progress, now);
      for (const a of actions) if (a.type === 'offer') offeredPerWave[a.wave]!.push(...a.deviceIds);
      state = applyActions(state, actions);
      progress = applyToDevices(progress, actions).map((d, position) =>
        d.state === 'offered'
          ? fails(position)
            ? { ...d, state: 'rolled_back', reason: 'health check failed' }
            : { ...d, state: 'succeeded' }
          : d,
      );
      now += 10_000;
    }
    return { state, offeredPerWave, progress };
  }

  it('runs 20 devices through three waves with one failing device to completion', () => {
    const plan = { ...PLAN, waves: [10, 50, 100] };
    const run = simulate(20, plan, (p) => p === 7);
    expect(run.state.status).toBe('completed');
    expect(run.offeredPerWave.map((w) => w.length)).toEqual([2, 8, 10]);
    expect(run.progress.filter((d) => d.state === 'rolled_back')).toHaveLength(1);
    expect(run.state.waves.every((w) => w.completedAt !== null)).toBe(true);
  });

  it('aborts after the first wave when 30% of the devices fail, offering no one else', () => {
    const plan = { ...PLAN, waves: [25, 50, 100] };
    const run = simulate(20, plan, (p) => p % 3 === 0 && p < 18);
    expect(run.state.status).toBe('aborted');
    expect(run.state.reason).toBe('failure rate 40% (2 of 5 finished devices) exceeds 20%');
    expect(run.offeredPerWave.map((w) => w.length)).toEqual([5, 0, 0]);
    expect(run.progress.filter((d) => d.state === 'pending')).toHaveLength(15);
  });
});

describe('orderTargets', () => {
  const ids = range(0, 50);

  it('is deterministic and independent of the order given', () => {
    const a = orderTargets('rollout-a', ids);
    expect(orderTargets('rollout-a', [...ids].reverse())).toEqual(a);
    expect([...a].sort()).toEqual(ids);
  });

  it('differs between rollouts, so the same devices are not always first', () => {
    expect(orderTargets('rollout-a', ids)).not.toEqual(orderTargets('rollout-b', ids));
  });

  it('lists each device once', () => {
    expect(orderTargets('r', ['a', 'b', 'a'])).toHaveLength(2);
  });
});

describe('waveEnds', () => {
  it.each([
    { waves: [5, 25, 100], n: 20, ends: [1, 5, 20] },
    { waves: [10, 50, 100], n: 20, ends: [2, 10, 20] },
    { waves: [1, 100], n: 1000, ends: [10, 1000] },
    { waves: [1, 2, 100], n: 10, ends: [1, 2, 10] },
    { waves: [50, 100], n: 3, ends: [2, 3] },
    { waves: [10, 20, 100], n: 2, ends: [1, 2, 2] },
    { waves: [100], n: 7, ends: [7] },
  ])('$waves of $n devices end at $ends', ({ waves, n, ends }) => {
    expect(waveEnds(waves, n)).toEqual(ends);
  });
});

describe('control', () => {
  const running = at(0);
  it.each<{
    from: RolloutStatus;
    command: ControlCommand;
    to: RolloutStatus | 'refused';
    changed?: boolean;
  }>([
    { from: 'running', command: 'pause', to: 'paused', changed: true },
    { from: 'paused', command: 'pause', to: 'paused', changed: false },
    { from: 'paused', command: 'resume', to: 'running', changed: true },
    { from: 'running', command: 'resume', to: 'running', changed: false },
    { from: 'running', command: 'cancel', to: 'cancelled', changed: true },
    { from: 'paused', command: 'cancel', to: 'cancelled', changed: true },
    { from: 'cancelled', command: 'cancel', to: 'cancelled', changed: false },
    { from: 'cancelled', command: 'resume', to: 'refused' },
    { from: 'completed', command: 'pause', to: 'refused' },
    { from: 'completed', command: 'cancel', to: 'refused' },
    { from: 'aborted', command: 'resume', to: 'refused' },
  ])('$command on a $from rollout: $to', ({ from, command, to, changed }) => {
    const result = control({ ...running, status: from }, command, T0 + 1, 'tok-1');
    if (to === 'refused') {
      expect(result).toEqual({ ok: false, reason: 'finished' });
      return;
    }
    expect(result.ok && result.state.status).toBe(to);
    expect(result.ok && result.changed).toBe(changed);
  });

  it('records who cancelled and when', () => {
    const result = control(running, 'cancel', T0 + 1, 'tok-1');
    expect(result).toMatchObject({
      ok: true,
      state: { status: 'cancelled', reason: 'cancelled by tok-1', finishedAt: T0 + 1 },
    });
  });
});

describe('applyReport', () => {
  it.each<{
    name: string;
    current: { state: DeviceState; reason: string | null };
    report: Parameters<typeof applyReport>[1];
    next: ReturnType<typeof applyReport>;
  }>([
    {
      name: 'progress moves an offered device on',
      current: { state: 'offered', reason: null },
      report: { state: 'downloading', detail: '12%' },
      next: { state: 'downloading', reason: null },
    },
    {
      name: 'a result ends the update with its reason',
      current: { state: 'trial', reason: null },
      report: { state: 'rolled_back', reason: 'health check failed' },
      next: { state: 'rolled_back', reason: 'health check failed' },
    },
    {
      name: 'a failure without a reason says so',
      current: { state: 'installing', reason: null },
      report: { state: 'failed' },
      next: { state: 'failed', reason: 'no reason given' },
    },
    {
      name: 'a restarted agent may report an earlier step again',
      current: { state: 'installing', reason: null },
      report: { state: 'downloading' },
      next: { state: 'downloading', reason: null },
    },
    {
      name: 'a finished device stays finished',
      current: { state: 'succeeded', reason: null },
      report: { state: 'failed', reason: 'late' },
      next: null,
    },
    {
      name: 'a rolled back device stays rolled back',
      current: { state: 'rolled_back', reason: 'health' },
      report: { state: 'succeeded' },
      next: null,
    },
    {
      name: 'a device the service timed out may still tell what happened',
      current: { state: 'failed', reason: 'timeout' },
      report: { state: 'succeeded' },
      next: { state: 'succeeded', reason: null },
    },
  ])('$name', ({ current, report, next }) => {
    expect(applyReport(current, report)).toEqual(next);
  });
});

describe('summarize', () => {
  it('counts per wave and in total, with each wave’s phase', () => {
    const state = at(1, { completed: T0 + 5 });
    const summary = summarize({ ...PLAN, waves: [10, 50, 100] }, state, devices([S, S, F, RB, S]));
    expect(summary.waves.map((w) => [w.phase, w.devices, w.through])).toEqual([
      ['done', 1, 1],
      ['soaking', 4, 5],
      ['pending', 5, 10],
    ]);
    expect(summary.waves[1]!.soakUntil).toBe(T0 + 5 + SOAK);
    expect(summary.waves[1]!.counts).toEqual({
      pending: 0,
      offered: 0,
      updating: 0,
      succeeded: 2,
      failed: 1,
      rolledBack: 1,
    });
    expect(summary.totals).toMatchObject({
      devices: 10,
      pending: 5,
      finished: 5,
      failureRate: 0.4,
    });
  });

  it('shows the waves of an aborted rollout as done or never started', () => {
    const aborted = { ...at(0), status: 'aborted' as const };
    const summary = summarize(PLAN, aborted, devices([F]));
    expect(summary.waves.map((w) => w.phase)).toEqual(['done', 'pending', 'pending']);
  });
});
