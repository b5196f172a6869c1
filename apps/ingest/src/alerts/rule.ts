import type { AlertSeverity } from '@outpost/protocol/events';
import type { Rule } from './evaluate.js';

/**
 * Alert rules as people write them and as the engine runs them. Pure: no I/O.
 * Durations are milliseconds here; the API shows them as `30s`, `5m`…
 */

export interface Scope {
  /** Only these devices. */
  devices?: readonly string[];
  /** Only devices carrying every one of these registry tags. */
  tags?: Readonly<Record<string, string>>;
  /** Only this gateway and the devices behind it. */
  gateway?: string;
}

export type Channel = { type: 'webhook'; url: string } | { type: 'log' };

interface CommonSpec {
  scope: Scope;
  severity: AlertSeverity;
  /** Paging channels. Every transition is also sent to the SSE stream. */
  channels: readonly Channel[];
}

export interface ThresholdSpec extends CommonSpec {
  kind: 'threshold';
  metric: string;
  above?: number;
  below?: number;
  /** Hysteresis: an `above` alert clears only below this (defaults to `above`). */
  clearBelow?: number;
  /** Hysteresis: a `below` alert clears only above this (defaults to `below`). */
  clearAbove?: number;
  /** The condition must hold this long before the alert fires. */
  forMs: number;
  /** The clear condition must hold this long before the alert resolves. */
  clearForMs: number;
  /** When set, the limits apply to the change per `rateMs` instead of the value. */
  rateMs?: number;
  /** PROTOCOL.md §5 `bf`: backfilled readings update state; they page only with `page`. */
  backfill: 'record' | 'page';
  /** Flap suppression; null turns it off. */
  flap: { fires: number; windowMs: number } | null;
}

export interface OfflineSpec extends CommonSpec {
  kind: 'offline';
  /** No reading or state from the device for this long. */
  afterMs: number;
}

export type RuleSpec = ThresholdSpec | OfflineSpec;

/** A stored rule. The webhook signing secret is kept apart and never shown after creation. */
export interface RuleRecord {
  id: string;
  name: string;
  enabled: boolean;
  spec: RuleSpec;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
}

/** Reasons a well-formed rule can never work; empty when it can. */
export function ruleProblems(spec: RuleSpec): string[] {
  if (spec.kind === 'offline') return [];
  const problems: string[] = [];
  const { above, below, clearBelow, clearAbove } = spec;
  if (above === undefined && below === undefined) {
    problems.push('give a limit: above or below');
  }
  if (above !== undefined && below !== undefined) {
    problems.push('give one limit, above or below, not both: use two rules for a band');
  }
  if (clearBelow !== undefined && above === undefined) {
    problems.push('clearBelow belongs to an above rule; a below rule clears with clearAbove');
  }
  if (clearAbove !== undefined && below === undefined) {
    problems.push('clearAbove belongs to a below rule; an above rule clears with clearBelow');
  }
  if (above !== undefined && clearBelow !== undefined && clearBelow > above) {
    problems.push(
      `clearBelow ${clearBelow} is above the limit ${above}: an alert raised above ${above} would clear while still above it; use a clearBelow at or below ${above}`,
    );
  }
  if (below !== undefined && clearAbove !== undefined && clearAbove < below) {
    problems.push(
      `clearAbove ${clearAbove} is below the limit ${below}: an alert raised below ${below} would clear while still below it; use a clearAbove at or above ${below}`,
    );
  }
  return problems;
}

/** The spec in the form `evaluate` runs. `ruleProblems` must be empty. */
export function compileRule(spec: RuleSpec, watchingSince: number): Rule {
  if (spec.kind === 'offline') return { kind: 'offline', afterMs: spec.afterMs, watchingSince };
  const above = spec.above !== undefined;
  return {
    kind: 'threshold',
    comparison: above ? 'above' : 'below',
    limit: (above ? spec.above : spec.below)!,
    clearLimit: (above ? spec.clearBelow : spec.clearAbove) ?? null,
    forMs: spec.forMs,
    clearForMs: spec.clearForMs,
    rateMs: spec.rateMs ?? null,
    pageBackfill: spec.backfill === 'page',
    flap: spec.flap,
  };
}

/**
 * A test of whether a reading of `device` (published by `publisher`, with its registry tags)
 * is in scope: all given criteria hold. Built once per rule; called per reading.
 */
export function scopeMatcher(
  scope: Scope,
): (device: string, tags: Readonly<Record<string, string>>, publisher: string) => boolean {
  const devices = scope.devices ? new Set(scope.devices) : null;
  const gateway = scope.gateway ?? null;
  const tags = Object.entries(scope.tags ?? {});
  return (device, deviceTags, publisher) => {
    if (devices && !devices.has(device)) return false;
    if (gateway !== null && publisher !== gateway && device !== gateway) return false;
    for (const [k, v] of tags) if (deviceTags[k] !== v) return false;
    return true;
  };
}

/** `temperature > 90 for 30s, clears < 85 for 10s`: the condition in one line. */
export function describeCondition(spec: RuleSpec): string {
  if (spec.kind === 'offline') return `no reading or state for ${formatDuration(spec.afterMs)}`;
  const above = spec.above !== undefined;
  const measure = spec.rateMs
    ? `change of ${spec.metric} per ${formatDuration(spec.rateMs)}`
    : spec.metric;
  const limit = above ? spec.above : spec.below;
  const clear = above ? spec.clearBelow : spec.clearAbove;
  let text = `${measure} ${above ? '>' : '<'} ${limit}`;
  if (spec.forMs > 0) text += ` for ${formatDuration(spec.forMs)}`;
  if (clear !== undefined) text += `, clears ${above ? '<' : '>'} ${clear}`;
  else if (spec.clearForMs > 0) text += `, clears ${above ? '<=' : '>='} ${limit}`;
  if (spec.clearForMs > 0) text += ` for ${formatDuration(spec.clearForMs)}`;
  return text;
}

/** A default name: the condition, shortened. */
export function defaultRuleName(spec: RuleSpec): string {
  return spec.kind === 'offline'
    ? `offline ${formatDuration(spec.afterMs)}`
    : describeCondition(spec);
}

const UNITS = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
] as const;

/**
 * `90061000` → `1d1h1m1s`; below a second or not whole seconds, `1500ms`. The API accepts
 * what this prints, so a rule reads back as it was written.
 */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms % 1000 !== 0) return ms < 1000 ? `${ms}ms` : `${Math.round(ms / 100) / 10}s`;
  let rest = ms;
  let text = '';
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) text += `${n}${unit}`;
    rest -= n * size;
  }
  return text;
}

/** A duration the API reads back exactly: one unit only (`90s`, `15m`, `1500ms`). */
export function durationText(ms: number): string {
  for (const [unit, size] of UNITS) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
