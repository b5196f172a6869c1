import { createHash } from 'node:crypto';
import { OTA_STATES, OTA_TERMINAL_STATES, type OtaState } from '@outpost/protocol/ota';

/**
 * The rollout state machine: which devices to offer firmware to next, when a wave is done,
 * when to abort and when the rollout is complete. Pure: the caller passes the time and the
 * state read from the store, and applies the actions returned (rollouts.service and
 * rollout-runner do the I/O). Evaluating a state twice gives the same actions; evaluating
 * it again after they were applied gives none until time moves on.
 */

export const ROLLOUT_STATUSES = ['running', 'paused', 'completed', 'aborted', 'cancelled'] as const;
export type RolloutStatus = (typeof ROLLOUT_STATUSES)[number];

/** A rollout that ended: nothing advances it any more. */
export function isFinished(status: RolloutStatus): boolean {
  return status === 'completed' || status === 'aborted' || status === 'cancelled';
}

/** A device of a rollout before its offer (`pending`), then the PROTOCOL.md §8 OTA states. */
export const DEVICE_STATES = ['pending', ...OTA_STATES] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

const TERMINAL: ReadonlySet<DeviceState> = new Set(OTA_TERMINAL_STATES);

export function isTerminal(state: DeviceState): boolean {
  return TERMINAL.has(state);
}

/** `rolled_back` counts as a failure: the device booted the new version and it did not work. */
export function isFailure(state: DeviceState): boolean {
  return state === 'failed' || state === 'rolled_back';
}

/** Offered or updating: the device has the offer and has not finished. */
export function isInFlight(state: DeviceState): boolean {
  return state !== 'pending' && !isTerminal(state);
}

/** The reason given to devices that did not answer in time. */
export const TIMEOUT_REASON = 'timeout';

export interface RolloutPlan {
  /** Cumulative percentages of the targets, strictly ascending, the last one 100. */
  waves: readonly number[];
  /** How long a finished wave is watched before the next starts. */
  soakMs: number;
  /** Abort when failures / finished devices exceeds this (0..1)… */
  abortFailureRate: number;
  /** …once at least this many devices (or all of them, if fewer) have finished. */
  minDevices: number;
  /** An offered device that has not reported within this time fails with `timeout`. */
  offerTimeoutMs: number;
  /** An updating device whose last report is older than this fails with `timeout`. */
  updateTimeoutMs: number;
}

export interface WaveMark {
  startedAt: number | null;
  completedAt: number | null;
}

export interface RolloutState {
  status: RolloutStatus;
  /** Index of the latest wave started (0 before the first evaluation). */
  currentWave: number;
  /** One mark per wave of the plan. */
  waves: readonly WaveMark[];
  /** Why it aborted (or was cancelled). */
  reason: string | null;
  finishedAt: number | null;
}

export interface DeviceProgress {
  deviceId: string;
  state: DeviceState;
  reason: string | null;
  /** Last state change or report (service clock): the base of both timeouts. */
  updatedAt: number;
}

export type RolloutAction =
  | { type: 'timeout'; deviceIds: string[]; at: number }
  | { type: 'wave_started'; wave: number; at: number }
  | { type: 'offer'; wave: number; deviceIds: string[]; at: number }
  | { type: 'wave_completed'; wave: number; at: number }
  | { type: 'abort'; reason: string; at: number }
  | { type: 'complete'; at: number };

export function initialState(plan: RolloutPlan): RolloutState {
  return {
    status: 'running',
    currentWave: 0,
    waves: plan.waves.map(() => ({ startedAt: null, completedAt: null })),
    reason: null,
    finishedAt: null,
  };
}

/**
 * Deterministic device order: by SHA-256 of (rollout id, device id). Stable for a rollout,
 * different between rollouts (the same devices are not always first), and independent of
 * registration order or id spelling.
 */
export function orderTargets(rolloutId: string, deviceIds: readonly string[]): string[] {
  const keyed = [...new Set(deviceIds)].map((id) => ({
    id,
    key: createHash('sha256').update(`${rolloutId}\n${id}`).digest('hex'),
  }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1));
  return keyed.map((k) => k.id);
}

/**
 * End (exclusive) of each wave in the ordered targets. Each wave adds at least one device
 * while any remain; the last wave takes the rest.
 */
export function waveEnds(waves: readonly number[], n: number): number[] {
  const ends: number[] = [];
  let previous = 0;
  for (let i = 0; i < waves.length; i++) {
    const end = i === waves.length - 1 ? n : Math.ceil((n * waves[i]!) / 100);
    previous = Math.min(n, Math.max(end, previous + 1));
    ends.push(previous);
  }
  return ends;
}

/** The wave a device at `position` of the ordered targets belongs to. */
export function waveOf(ends: readonly number[], position: number): number {
  const i = ends.findIndex((end) => position < end);
  return i === -1 ? ends.length - 1 : i;
}

function percent(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}

/**
 * The next actions for a rollout. `devices` are the targets in rollout order (see
 * `orderTargets`). Order of checks: timeouts, then the failure rate (an abort offers
 * nothing), then the current wave (offer its pending devices; once all of it has finished,
 * mark it complete, soak, start the next or complete the rollout).
 */
export function evaluate(
  plan: RolloutPlan,
  state: RolloutState,
  devices: readonly DeviceProgress[],
  now: number,
): RolloutAction[] {
  if (state.status !== 'running') return [];
  const actions: RolloutAction[] = [];

  const timedOut = devices.filter(
    (d) =>
      isInFlight(d.state) &&
      now - d.updatedAt >= (d.state === 'offered' ? plan.offerTimeoutMs : plan.updateTimeoutMs),
  );
  const timedOutIds = new Set(timedOut.map((d) => d.deviceId));
  if (timedOut.length > 0) {
    actions.push({ type: 'timeout', deviceIds: [...timedOutIds], at: now });
  }
  const stateOf = (d: DeviceProgress): DeviceState =>
    timedOutIds.has(d.deviceId) ? 'failed' : d.state;

  let finished = 0;
  let failures = 0;
  for (const d of devices) {
    const s = stateOf(d);
    if (isTerminal(s)) finished++;
    if (isFailure(s)) failures++;
  }
  const threshold = Math.max(1, Math.min(plan.minDevices, devices.length));
  if (finished >= threshold && failures / finished > plan.abortFailureRate) {
    actions.push({
      type: 'abort',
      reason: `failure rate ${percent(failures / finished)} (${failures} of ${finished} finished devices) exceeds ${percent(plan.abortFailureRate)}`,
      at: now,
    });
    return actions;
  }

  const ends = waveEnds(plan.waves, devices.length);
  const last = plan.waves.length - 1;
  let wave = state.currentWave;
  let mark = state.waves[wave] ?? { startedAt: null, completedAt: null };
  if (mark.startedAt === null) {
    actions.push({ type: 'wave_started', wave, at: now });
    mark = { startedAt: now, completedAt: null };
  }
  for (;;) {
    const released = devices.slice(0, ends[wave] ?? devices.length);
    const pending = released.filter((d) => stateOf(d) === 'pending').map((d) => d.deviceId);
    if (pending.length > 0) {
      actions.push({ type: 'offer', wave, deviceIds: pending, at: now });
      return actions;
    }
    if (!released.every((d) => isTerminal(stateOf(d)))) return actions;
    let completedAt = mark.completedAt;
    if (completedAt === null) {
      actions.push({ type: 'wave_completed', wave, at: now });
      completedAt = now;
    }
    if (wave >= last) {
      actions.push({ type: 'complete', at: now });
      return actions;
    }
    // A wave that would add no device (few targets, many waves) is not waited for.
    const adds = (ends[wave + 1] ?? 0) > (ends[wave] ?? 0);
    if (adds && now - completedAt < plan.soakMs) return actions;
    wave++;
    actions.push({ type: 'wave_started', wave, at: now });
    mark = { startedAt: now, completedAt: null };
  }
}

/** The rollout after `actions` (device changes are the store's; see `applyToDevices`). */
export function applyActions(state: RolloutState, actions: readonly RolloutAction[]): RolloutState {
  let next: RolloutState = { ...state, waves: state.waves.map((w) => ({ ...w })) };
  for (const action of actions) {
    switch (action.type) {
      case 'wave_started': {
        const waves = [...next.waves];
        waves[action.wave] = { startedAt: action.at, completedAt: null };
        next = { ...next, currentWave: action.wave, waves };
        break;
      }
      case 'wave_completed': {
        const waves = [...next.waves];
        waves[action.wave] = {
          startedAt: waves[action.wave]?.startedAt ?? action.at,
          completedAt: action.at,
        };
        next = { ...next, waves };
        break;
      }
      case 'abort':
        next = { ...next, status: 'aborted', reason: action.reason, finishedAt: action.at };
        break;
      case 'complete':
        next = { ...next, status: 'completed', finishedAt: action.at };
        break;
      case 'timeout':
      case 'offer':
        break;
    }
  }
  return next;
}

/** Device progress after `actions`: offers and timeouts. */
export function applyToDevices(
  devices: readonly DeviceProgress[],
  actions: readonly RolloutAction[],
): DeviceProgress[] {
  const changes = new Map<string, DeviceProgress>();
  for (const action of actions) {
    if (action.type === 'offer') {
      for (const id of action.deviceIds)
        changes.set(id, { deviceId: id, state: 'offered', reason: null, updatedAt: action.at });
    } else if (action.type === 'timeout') {
      for (const id of action.deviceIds)
        changes.set(id, {
          deviceId: id,
          state: 'failed',
          reason: TIMEOUT_REASON,
          updatedAt: action.at,
        });
    }
  }
  return devices.map((d) => changes.get(d.deviceId) ?? d);
}

export type ControlCommand = 'pause' | 'resume' | 'cancel';

export type ControlResult =
  | { ok: true; state: RolloutState; changed: boolean }
  | { ok: false; reason: 'finished' };

/**
 * Pause, resume and cancel. Repeating one is harmless (`changed: false`); a rollout that
 * completed, aborted or was cancelled cannot be controlled any more. Devices already offered
 * carry on either way: a device cannot be stopped mid-update.
 */
export function control(
  state: RolloutState,
  command: ControlCommand,
  now: number,
  by?: string,
): ControlResult {
  const same = { ok: true as const, state, changed: false };
  if (command === 'cancel' && state.status === 'cancelled') return same;
  if (isFinished(state.status)) return { ok: false, reason: 'finished' };
  switch (command) {
    case 'pause':
      return state.status === 'paused'
        ? same
        : { ok: true, state: { ...state, status: 'paused' }, changed: true };
    case 'resume':
      return state.status === 'running'
        ? same
        : { ok: true, state: { ...state, status: 'running' }, changed: true };
    case 'cancel':
      return {
        ok: true,
        state: {
          ...state,
          status: 'cancelled',
          reason: by ? `cancelled by ${by}` : 'cancelled',
          finishedAt: now,
        },
        changed: true,
      };
  }
}

/** What a device said about its update (an `ota.progress` or `ota.result` event). */
export interface DeviceReport {
  state: OtaState;
  reason?: string | undefined;
  detail?: string | undefined;
}

/**
 * The device's state after its report, or null when the report is ignored: a finished
 * device stays finished, except that a device the service timed out may still report what
 * really happened. Anything else is taken as said (an agent restarted mid-install may
 * report `downloading` again).
 */
export function applyReport(
  current: Pick<DeviceProgress, 'state' | 'reason'>,
  report: DeviceReport,
): { state: DeviceState; reason: string | null } | null {
  if (isTerminal(current.state)) {
    const timedOut = current.state === 'failed' && current.reason === TIMEOUT_REASON;
    if (!timedOut) return null;
  }
  const reason = isFailure(report.state)
    ? (report.reason ?? report.detail ?? 'no reason given')
    : null;
  return { state: report.state, reason };
}

export type WavePhase = 'pending' | 'active' | 'soaking' | 'done';

export interface StateCounts {
  pending: number;
  offered: number;
  updating: number;
  succeeded: number;
  failed: number;
  rolledBack: number;
}

export interface WaveSummary {
  index: number;
  percent: number;
  /** Devices in this wave alone, and the first position after it. */
  devices: number;
  through: number;
  phase: WavePhase;
  startedAt: number | null;
  completedAt: number | null;
  /** When the next wave may start (a wave that finished, before its soak ended). */
  soakUntil: number | null;
  counts: StateCounts;
}

export interface RolloutSummary {
  waves: WaveSummary[];
  totals: StateCounts & { devices: number; finished: number; failureRate: number };
}

function emptyCounts(): StateCounts {
  return { pending: 0, offered: 0, updating: 0, succeeded: 0, failed: 0, rolledBack: 0 };
}

function count(counts: StateCounts, state: DeviceState): void {
  if (state === 'pending') counts.pending++;
  else if (state === 'offered') counts.offered++;
  else if (state === 'succeeded') counts.succeeded++;
  else if (state === 'failed') counts.failed++;
  else if (state === 'rolled_back') counts.rolledBack++;
  else counts.updating++;
}

/** Progress per wave and in total, for the API, the stream and the CLI. */
export function summarize(
  plan: RolloutPlan,
  state: RolloutState,
  devices: readonly Pick<DeviceProgress, 'state'>[],
): RolloutSummary {
  const ends = waveEnds(plan.waves, devices.length);
  const totals = emptyCounts();
  const waves: WaveSummary[] = plan.waves.map((pct, index) => {
    const from = index === 0 ? 0 : (ends[index - 1] ?? 0);
    const through = ends[index] ?? devices.length;
    const counts = emptyCounts();
    for (const d of devices.slice(from, through)) {
      count(counts, d.state);
      count(totals, d.state);
    }
    const mark = state.waves[index] ?? { startedAt: null, completedAt: null };
    const nextStarted = state.waves[index + 1]?.startedAt != null;
    const last = index === plan.waves.length - 1;
    // A rollout that ended has no active wave: one it stopped in is done too.
    const phase: WavePhase =
      mark.startedAt === null
        ? 'pending'
        : isFinished(state.status) || (mark.completedAt !== null && (last || nextStarted))
          ? 'done'
          : mark.completedAt === null
            ? 'active'
            : 'soaking';
    return {
      index,
      percent: pct,
      devices: through - from,
      through,
      phase,
      startedAt: mark.startedAt,
      completedAt: mark.completedAt,
      soakUntil:
        phase === 'soaking' && mark.completedAt !== null ? mark.completedAt + plan.soakMs : null,
      counts,
    };
  });
  const finished = totals.succeeded + totals.failed + totals.rolledBack;
  const failures = totals.failed + totals.rolledBack;
  return {
    waves,
    totals: {
      ...totals,
      devices: devices.length,
      finished,
      failureRate: finished === 0 ? 0 : failures / finished,
    },
  };
}
