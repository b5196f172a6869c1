/**
 * The alert state machine of one rule and one device. Pure: no Nest, no storage, no clock;
 * time and every input are arguments, so it is table-tested.
 *
 * Threshold rules: ok → pending (the condition holds, `for` not yet elapsed) → firing →
 * resolved (the clear condition held for `clearFor`); pending → cancelled when the condition
 * stops before `for`. Offline rules: ok → firing after `after` of silence → resolved when the
 * device is heard from again.
 *
 * Time is the reading's (its clock is trusted unless the record says `cq: unsynced`, then
 * arrival time is used), capped at `now`. Timers (`for`, `clearFor`) are decided from the
 * times alone, so the outcome is the same whether a timer tick or the next reading noticed
 * the elapsed time.
 */

export interface ThresholdRule {
  kind: 'threshold';
  comparison: 'above' | 'below';
  limit: number;
  /** Hysteresis limit; null clears as soon as the limit is no longer crossed. */
  clearLimit: number | null;
  forMs: number;
  clearForMs: number;
  /** Compare the change per `rateMs` instead of the value. */
  rateMs: number | null;
  /** PROTOCOL.md §5: backfilled readings page only when the rule asks to. */
  pageBackfill: boolean;
  /**
   * After `fires` fires within `windowMs` the alert is flapping: it stays open until the
   * clear condition has held for the whole window, so a flapping signal pages once.
   */
  flap: { fires: number; windowMs: number } | null;
}

export interface OfflineRule {
  kind: 'offline';
  afterMs: number;
  /** Silence is counted from here at the earliest: a service that was down heard nothing. */
  watchingSince: number;
}

export type Rule = ThresholdRule | OfflineRule;

export type Input =
  /** A reading of the rule's metric (offline rules: of any metric). */
  | {
      kind: 'reading';
      timeMs: number;
      value: number | boolean | string;
      backfilled: boolean;
      unsynced: boolean;
    }
  /** The device was heard from at `at` (connected, published state). */
  | { kind: 'seen'; at: number }
  /** The rule was deleted, disabled or changed: close what is open. */
  | { kind: 'retire'; reason: RetireReason };

export type RetireReason = 'rule_deleted' | 'rule_disabled' | 'rule_changed';

export type AlertStatus = 'pending' | 'firing' | 'resolved' | 'cancelled';

/** The alert instance of this (rule, device), as of a transition. */
export interface AlertSnapshot {
  /** Given by the caller (the engine) when an alert opens; evaluate leaves new ones null. */
  id: string | null;
  status: AlertStatus;
  openedAt: number;
  firedAt: number | null;
  closedAt: number | null;
  /** The value (or rate) that opened it; null for offline alerts. */
  value: number | null;
  /** The worst value while open. */
  peak: number | null;
  /** A firing notification went to the paging channels. */
  paged: boolean;
  /** Why it fired without paging. */
  quiet: 'backfilled' | null;
  flapping: boolean;
  /** Re-breaches while held open as flapping. */
  flaps: number;
  /** Offline alerts: when the device was last heard from as it fired. */
  lastSeenAt: number | null;
}

export interface RuleState {
  phase: 'ok' | 'pending' | 'firing';
  /** Time of the latest reading taken into account; older readings are ignored. */
  lastAt: number | null;
  /** The latest compared value (value or rate). */
  lastValue: number | null;
  lastBackfilled: boolean;
  /** Pending: since when the condition holds. */
  since: number | null;
  /** Firing: since when the clear condition holds. */
  clearingSince: number | null;
  /** Rate rules: the previous reading. */
  prev: { at: number; value: number } | null;
  /** Fire times within the flap window. */
  fires: number[];
  /** Offline rules: when the device was last heard from. */
  seenAt: number | null;
  alert: AlertSnapshot | null;
}

export const INITIAL_STATE: RuleState = Object.freeze({
  phase: 'ok',
  lastAt: null,
  lastValue: null,
  lastBackfilled: false,
  since: null,
  clearingSince: null,
  prev: null,
  fires: [],
  seenAt: null,
  alert: null,
}) as RuleState;

export type TransitionKind = 'pending' | 'firing' | 'resolved' | 'cancelled';

/** What explains a transition: the numbers a notification shows. */
export interface Why {
  /** The compared value that decided it; for timers, the latest one. */
  value: number | null;
  /** Decided by time passing (a `for`, `clearFor` or `after`), not by a reading. */
  timer: boolean;
  backfilled: boolean;
  /** A firing alert recorded quietly from backfilled data, paged now that live data agrees. */
  late: boolean;
  /** How long the deciding condition held. */
  heldMs: number | null;
  /** Resolved: how long the alert was firing. */
  incidentMs: number | null;
  /** Offline: how long the device was silent. */
  silentMs: number | null;
  /** Flapping: fires within the flap window. */
  fires: number | null;
  reason: 'condition' | RetireReason;
}

export interface Transition {
  kind: TransitionKind;
  at: number;
  /** Notify the paging channels (webhooks). The stream and the log see every transition. */
  page: boolean;
  alert: AlertSnapshot;
  why: Why;
}

export interface Evaluation {
  state: RuleState;
  transitions: Transition[];
  /** Why the input changed nothing. */
  ignored: 'out_of_order' | 'not_numeric' | null;
}

export function evaluate(
  rule: Rule,
  input: Input | null,
  state: RuleState,
  now: number,
): Evaluation {
  const s = clone(state);
  const out: Transition[] = [];
  if (input?.kind === 'retire') {
    retire(s, input.reason, now, out);
    return { state: { ...INITIAL_STATE, fires: [] }, transitions: out, ignored: null };
  }
  if (rule.kind === 'offline') {
    offline(rule, input, s, now, out);
    return { state: s, transitions: out, ignored: null };
  }
  if (input?.kind !== 'reading') {
    elapse(rule, s, now, out);
    return { state: s, transitions: out, ignored: null };
  }

  const t = input.unsynced ? now : Math.min(input.timeMs, now);
  if (state.lastAt !== null && t < state.lastAt) {
    return { state, transitions: [], ignored: 'out_of_order' };
  }
  const raw = numeric(input.value);
  if (raw === null) return { state, transitions: [], ignored: 'not_numeric' };
  // Time first: a `for` may have elapsed between the previous reading and this one.
  elapse(rule, s, t, out);
  s.lastAt = t;
  s.lastBackfilled = input.backfilled;
  let measured = raw;
  if (rule.rateMs !== null) {
    const prev = s.prev;
    s.prev = { at: t, value: raw };
    if (!prev || t <= prev.at) return { state: s, transitions: out, ignored: null };
    measured = ((raw - prev.value) / (t - prev.at)) * rule.rateMs;
  }
  s.lastValue = measured;

  const breach = rule.comparison === 'above' ? measured > rule.limit : measured < rule.limit;
  const clear =
    rule.clearLimit === null
      ? !breach
      : rule.comparison === 'above'
        ? measured < rule.clearLimit
        : measured > rule.clearLimit;
  const why = (extra: Partial<Why> = {}): Why => ({
    ...NO_WHY,
    value: measured,
    backfilled: input.backfilled,
    ...extra,
  });

  switch (s.phase) {
    case 'ok':
      if (!breach) break;
      s.phase = 'pending';
      s.since = t;
      s.alert = {
        id: null,
        status: 'pending',
        openedAt: t,
        firedAt: null,
        closedAt: null,
        value: measured,
        peak: measured,
        paged: false,
        quiet: null,
        flapping: false,
        flaps: 0,
        lastSeenAt: null,
      };
      if (rule.forMs === 0) fire(rule, s, t, input.backfilled, out, why({ heldMs: 0 }));
      else out.push(transition('pending', t, false, s.alert, why({ heldMs: 0 })));
      break;
    case 'pending':
      if (breach) s.alert!.peak = worst(rule, s.alert!.peak, measured);
      else {
        const alert = close(s.alert!, 'cancelled', t);
        out.push(transition('cancelled', t, false, alert, why({ heldMs: t - s.since! })));
        reset(s);
      }
      break;
    case 'firing': {
      const alert = s.alert!;
      if (!clear) {
        if (s.clearingSince !== null && alert.flapping) alert.flaps++;
        s.clearingSince = null;
        if (breach) {
          alert.peak = worst(rule, alert.peak, measured);
          if (!alert.paged && (!input.backfilled || rule.pageBackfill)) {
            // Recorded quietly from backfilled data; live data says it still holds: page now.
            alert.paged = true;
            alert.quiet = null;
            out.push(
              transition('firing', t, true, alert, why({ late: true, heldMs: t - alert.firedAt! })),
            );
          }
        }
        break;
      }
      s.clearingSince ??= t;
      if (t - s.clearingSince >= holdToClear(rule, s)) resolve(rule, s, t, out, why);
      break;
    }
  }
  return { state: s, transitions: out, ignored: null };
}

const NO_WHY: Why = {
  value: null,
  timer: false,
  backfilled: false,
  late: false,
  heldMs: null,
  incidentMs: null,
  silentMs: null,
  fires: null,
  reason: 'condition',
};

/** Timers: a pending `for` or a clearing hold that has elapsed by `t`. */
function elapse(rule: ThresholdRule, s: RuleState, t: number, out: Transition[]): void {
  const timerWhy = (extra: Partial<Why>): Why => ({
    ...NO_WHY,
    value: s.lastValue,
    backfilled: s.lastBackfilled,
    timer: true,
    ...extra,
  });
  if (s.phase === 'pending' && s.since !== null && t - s.since >= rule.forMs) {
    const at = s.since + rule.forMs;
    fire(rule, s, at, s.lastBackfilled, out, timerWhy({ heldMs: rule.forMs }));
  }
  if (s.phase === 'firing' && s.clearingSince !== null) {
    const hold = holdToClear(rule, s);
    if (t - s.clearingSince >= hold) {
      resolve(rule, s, s.clearingSince + hold, out, (extra) => timerWhy(extra ?? {}));
    }
  }
}

function fire(
  rule: ThresholdRule,
  s: RuleState,
  at: number,
  backfilled: boolean,
  out: Transition[],
  why: Why,
): void {
  const quiet = backfilled && !rule.pageBackfill;
  const fires = rule.flap ? [...s.fires.filter((f) => f > at - rule.flap!.windowMs), at] : [];
  const flapping = rule.flap !== null && fires.length >= rule.flap.fires;
  s.fires = fires;
  s.phase = 'firing';
  s.since = null;
  s.clearingSince = null;
  const alert = s.alert!;
  alert.status = 'firing';
  alert.firedAt = at;
  alert.paged = !quiet;
  alert.quiet = quiet ? 'backfilled' : null;
  alert.flapping = flapping;
  out.push(
    transition('firing', at, !quiet, alert, {
      ...why,
      backfilled,
      fires: flapping ? fires.length : null,
    }),
  );
}

function resolve(
  rule: ThresholdRule,
  s: RuleState,
  at: number,
  out: Transition[],
  why: (extra?: Partial<Why>) => Why,
): void {
  const alert = close(s.alert!, 'resolved', at);
  out.push(
    transition(
      'resolved',
      at,
      alert.paged,
      alert,
      why({ heldMs: at - s.clearingSince!, incidentMs: at - alert.firedAt! }),
    ),
  );
  // A flapping alert resolves only after a whole quiet window: the count starts over.
  if (alert.flapping || !rule.flap) s.fires = [];
  reset(s);
}

/** How long the clear condition must hold: the whole flap window while flapping. */
function holdToClear(rule: ThresholdRule, s: RuleState): number {
  return s.alert?.flapping && rule.flap
    ? Math.max(rule.clearForMs, rule.flap.windowMs)
    : rule.clearForMs;
}

function offline(
  rule: OfflineRule,
  input: Input | null,
  s: RuleState,
  now: number,
  out: Transition[],
): void {
  // A backfilled reading still proves the device is alive now: arrival time counts.
  const heard = input?.kind === 'reading' ? now : input?.kind === 'seen' ? input.at : null;
  if (heard !== null) s.seenAt = Math.max(s.seenAt ?? heard, Math.min(heard, now));
  if (s.phase === 'firing') {
    const alert = s.alert!;
    if (s.seenAt !== null && (alert.lastSeenAt === null || s.seenAt > alert.lastSeenAt)) {
      const at = Math.max(s.seenAt, alert.firedAt!);
      const closed = close(alert, 'resolved', at);
      const silentFrom = alert.lastSeenAt ?? rule.watchingSince;
      out.push(
        transition('resolved', at, closed.paged, closed, {
          ...NO_WHY,
          incidentMs: at - alert.firedAt!,
          silentMs: Math.max(0, s.seenAt - silentFrom),
        }),
      );
      reset(s);
    }
    return;
  }
  const from = Math.max(s.seenAt ?? rule.watchingSince, rule.watchingSince);
  if (now - from < rule.afterMs) return;
  const at = from + rule.afterMs;
  s.phase = 'firing';
  s.alert = {
    id: null,
    status: 'firing',
    openedAt: at,
    firedAt: at,
    closedAt: null,
    value: null,
    peak: null,
    paged: true,
    quiet: null,
    flapping: false,
    flaps: 0,
    lastSeenAt: s.seenAt,
  };
  out.push(
    transition('firing', at, true, s.alert, {
      ...NO_WHY,
      timer: true,
      silentMs: now - from,
      heldMs: now - from,
    }),
  );
}

function retire(s: RuleState, reason: RetireReason, now: number, out: Transition[]): void {
  const alert = s.alert;
  if (!alert) return;
  const why: Why = { ...NO_WHY, reason };
  if (alert.status === 'pending') {
    out.push(transition('cancelled', now, false, close(alert, 'cancelled', now), why));
  } else {
    const closed = close(alert, 'resolved', now);
    out.push(
      transition('resolved', now, closed.paged, closed, {
        ...why,
        incidentMs: now - (alert.firedAt ?? now),
      }),
    );
  }
}

function transition(
  kind: TransitionKind,
  at: number,
  page: boolean,
  alert: AlertSnapshot,
  why: Why,
): Transition {
  return { kind, at, page, alert: { ...alert }, why };
}

function close(alert: AlertSnapshot, status: 'resolved' | 'cancelled', at: number): AlertSnapshot {
  return { ...alert, status, closedAt: at };
}

function reset(s: RuleState): void {
  s.phase = 'ok';
  s.since = null;
  s.clearingSince = null;
  s.alert = null;
}

function worst(rule: ThresholdRule, peak: number | null, value: number): number {
  if (peak === null) return value;
  return rule.comparison === 'above' ? Math.max(peak, value) : Math.min(peak, value);
}

/** Numbers as they are; booleans as 1 and 0 (a door open); text cannot cross a limit. */
function numeric(value: number | boolean | string): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return null;
}

function clone(state: RuleState): RuleState {
  return {
    ...state,
    fires: [...state.fires],
    prev: state.prev ? { ...state.prev } : null,
    alert: state.alert ? { ...state.alert } : null,
  };
}

/**
 * Whether `next` differs from `prev` in what must survive a restart (phase, timers, the open
 * alert and its peak, flap history). The latest value and reading time alone are kept in
 * memory only: most readings change nothing that is written.
 */
export function persistentChange(prev: RuleState, next: RuleState): boolean {
  if (
    prev.phase !== next.phase ||
    prev.since !== next.since ||
    prev.clearingSince !== next.clearingSince ||
    prev.fires.length !== next.fires.length ||
    prev.fires.some((f, i) => next.fires[i] !== f)
  ) {
    return true;
  }
  const a = prev.alert;
  const b = next.alert;
  if (a === null || b === null) return a !== b;
  return (
    a.id !== b.id ||
    a.status !== b.status ||
    a.paged !== b.paged ||
    a.flapping !== b.flapping ||
    a.flaps !== b.flaps ||
    a.firedAt !== b.firedAt ||
    a.peak !== b.peak
  );
}
