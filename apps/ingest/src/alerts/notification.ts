import type { AlertSeverity } from '@outpost/protocol/events';
import type { AlertRecord, AlertWrite } from './alert-store.js';
import type { AlertStatus, Transition, Why } from './evaluate.js';
import { describeCondition, formatDuration, type RuleRecord, type RuleSpec } from './rule.js';

/**
 * The one message every channel carries for an alert transition (webhook body, SSE `alerts`
 * event, log line): what happened, and the values and durations that explain it. Pure.
 */

export const ALERT_EVENTS = [
  'alert.pending',
  'alert.firing',
  'alert.resolved',
  'alert.cancelled',
  'alert.acknowledged',
] as const;
export type AlertEvent = (typeof ALERT_EVENTS)[number];

/** Events sent to paging channels (webhooks); the stream and the log get every event. */
export const PAGING_EVENTS: ReadonlySet<AlertEvent> = new Set([
  'alert.firing',
  'alert.resolved',
  'alert.acknowledged',
]);

export interface AlertMessage {
  v: 1;
  /** Unique per notification; webhook receivers can deduplicate on it. */
  id: string;
  type: AlertEvent;
  /** When the transition happened (ISO 8601). */
  at: string;
  /** One line a person reads on a pager. */
  summary: string;
  alert: {
    id: string;
    ruleId: string;
    ruleName: string;
    device: string;
    metric: string | null;
    severity: AlertSeverity;
    state: AlertStatus;
    openedAt: string;
    firedAt: string | null;
    closedAt: string | null;
    paged: boolean;
    flapping: boolean;
  };
  explain: {
    condition: string;
    /** The value (or rate) that decided it; for a timer, the latest one. */
    value: number | null;
    limit: number | null;
    clearLimit: number | null;
    for: string | null;
    clearFor: string | null;
    /** How long the deciding condition held. */
    heldMs: number | null;
    /** Resolved: how long the alert was firing. */
    incidentMs: number | null;
    peak: number | null;
    /** Offline: how long the device was silent, and when it was last heard from. */
    silentMs: number | null;
    lastSeenAt: string | null;
    backfilled: boolean;
    /** Decided by a timer, not a reading. */
    timer: boolean;
    /** Recorded quietly from backfilled data, paged now that live data agrees. */
    late: boolean;
    fires: number | null;
    reason: Why['reason'] | 'acknowledged';
  };
  acknowledged: { at: string; by: string } | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Rounded for people: at most 3 decimals. */
export function formatValue(n: number | null): string {
  if (n === null) return '-';
  return Number.isInteger(n) ? String(n) : String(Math.round(n * 1000) / 1000);
}

export function eventOf(kind: Transition['kind']): AlertEvent {
  return `alert.${kind}`;
}

function alertPart(alert: AlertWrite | AlertRecord, rule: RuleRecord): AlertMessage['alert'] {
  return {
    id: alert.id,
    ruleId: rule.id,
    ruleName: rule.name,
    device: alert.device,
    metric: alert.metric,
    severity: alert.severity,
    state: alert.status,
    openedAt: iso(alert.openedAt)!,
    firedAt: iso(alert.firedAt),
    closedAt: iso(alert.closedAt),
    paged: alert.paged,
    flapping: alert.flapping,
  };
}

function limits(spec: RuleSpec) {
  if (spec.kind === 'offline') return { limit: null, clearLimit: null, for: null, clearFor: null };
  const above = spec.above !== undefined;
  return {
    limit: (above ? spec.above : spec.below) ?? null,
    clearLimit: (above ? spec.clearBelow : spec.clearAbove) ?? null,
    for: spec.forMs > 0 ? formatDuration(spec.forMs) : null,
    clearFor: spec.clearForMs > 0 ? formatDuration(spec.clearForMs) : null,
  };
}

/** The message of one transition of `alert` (as written by that transition). */
export function transitionMessage(
  id: string,
  t: Transition,
  alert: AlertWrite,
  rule: RuleRecord,
): AlertMessage {
  return {
    v: 1,
    id,
    type: eventOf(t.kind),
    at: iso(t.at)!,
    summary: summarize(t, alert, rule.spec),
    alert: alertPart(alert, rule),
    explain: {
      condition: describeCondition(rule.spec),
      value: t.why.value,
      ...limits(rule.spec),
      heldMs: t.why.heldMs,
      incidentMs: t.why.incidentMs,
      peak: t.alert.peak,
      silentMs: t.why.silentMs,
      lastSeenAt: iso(t.alert.lastSeenAt),
      backfilled: t.why.backfilled,
      timer: t.why.timer,
      late: t.why.late,
      fires: t.why.fires,
      reason: t.why.reason,
    },
    acknowledged: null,
  };
}

/** The message of an acknowledgement. */
export function acknowledgedMessage(
  id: string,
  alert: AlertRecord,
  rule: RuleRecord,
): AlertMessage {
  const at = alert.acknowledgedAt!;
  const since = alert.firedAt ?? alert.openedAt;
  return {
    v: 1,
    id,
    type: 'alert.acknowledged',
    at: iso(at)!,
    summary: `${rule.name} on ${alert.device} acknowledged by ${alert.acknowledgedBy} after ${formatDuration(Math.max(0, at - since))}`,
    alert: alertPart(alert, rule),
    explain: {
      condition: describeCondition(rule.spec),
      value: alert.value,
      ...limits(rule.spec),
      heldMs: null,
      incidentMs: Math.max(0, at - since),
      peak: alert.peak,
      silentMs: null,
      lastSeenAt: null,
      backfilled: false,
      timer: false,
      late: false,
      fires: null,
      reason: 'acknowledged',
    },
    acknowledged: { at: iso(at)!, by: alert.acknowledgedBy! },
  };
}

/** The one-line explanation of a transition. */
export function summarize(t: Transition, alert: AlertWrite, spec: RuleSpec): string {
  const why = t.why;
  const dur = (ms: number | null) => formatDuration(ms ?? 0);
  if (why.reason !== 'condition') {
    const cause = {
      rule_deleted: 'the rule was deleted',
      rule_disabled: 'the rule was disabled',
      rule_changed: 'the rule was changed',
    }[why.reason];
    return t.kind === 'cancelled'
      ? `${subject(spec, alert.device)}: cancelled because ${cause}`
      : `${subject(spec, alert.device)}: resolved because ${cause}; firing lasted ${dur(why.incidentMs)}`;
  }
  if (spec.kind === 'offline') {
    return t.kind === 'firing'
      ? `${alert.device}: no reading or state for ${dur(why.silentMs)} (last heard ${iso(t.alert.lastSeenAt) ?? 'never'})`
      : `${alert.device} heard from again after ${dur(why.silentMs)} of silence; alert lasted ${dur(why.incidentMs)}`;
  }
  const above = spec.above !== undefined;
  const limit = (above ? spec.above : spec.below)!;
  const clear = above ? spec.clearBelow : spec.clearAbove;
  const side = above ? 'above' : 'below';
  const back = above ? 'below' : 'above';
  const what = subject(spec, alert.device);
  const v = formatValue(why.value);
  let text: string;
  switch (t.kind) {
    case 'pending':
      text = `${what} is ${v}, ${side} ${limit}; fires if it stays ${side} for ${formatDuration(spec.forMs)}`;
      break;
    case 'firing':
      if (why.late) {
        text = `${what} still ${side} ${limit} (now ${v}); first seen in backfilled data at ${iso(t.alert.firedAt)}`;
      } else if (why.heldMs) {
        text = `${what} ${side} ${limit} for ${dur(why.heldMs)} (now ${v}, peak ${formatValue(t.alert.peak)})`;
      } else {
        text = `${what} is ${v}, ${side} ${limit}`;
      }
      if (alert.quiet === 'backfilled') text += '; recorded from backfilled data, not paged';
      if (why.fires !== null && spec.flap) {
        const window = formatDuration(spec.flap.windowMs);
        text += `; flapping: fired ${why.fires} times in ${window}, stays open until clear for ${window}`;
      }
      break;
    case 'resolved': {
      const clearText = clear !== undefined ? `${back} ${clear}` : `back to ${limit} or ${back}`;
      const held = why.heldMs ? ` for ${dur(why.heldMs)}` : '';
      text = `${what} ${clear !== undefined ? `back ${clearText}` : clearText}${held} (now ${v}); firing lasted ${dur(why.incidentMs)}, peak ${formatValue(t.alert.peak)}`;
      break;
    }
    case 'cancelled':
      text = `${what} fell back to ${v} after ${dur(why.heldMs)}, before the ${formatDuration(spec.forMs)} it must hold`;
      break;
  }
  return text;
}

function subject(spec: RuleSpec, device: string): string {
  if (spec.kind === 'offline') return device;
  const measure = spec.rateMs
    ? `change of ${spec.metric} per ${formatDuration(spec.rateMs)}`
    : spec.metric;
  return `${measure} on ${device}`;
}
