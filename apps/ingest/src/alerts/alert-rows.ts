import type { AlertSeverity } from '@outpost/protocol/events';
import type {
  AlertRecord,
  AlertWrite,
  DeliveryRecord,
  DeliveryState,
  StoredState,
} from './alert-store.js';
import type { AlertStatus, RuleState } from './evaluate.js';
import type { RuleRecord, RuleSpec } from './rule.js';

/**
 * Row shapes shared by the SQLite and PostgreSQL alert stores. SQLite returns JSON as text
 * and booleans as 0/1; PostgreSQL returns parsed JSON and booleans (int8 parsed as number).
 */
type Json = string | Record<string, unknown>;
type Bool = number | boolean;

export interface RuleRow {
  id: string;
  name: string;
  enabled: Bool;
  spec: Json;
  created_by: string;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

export interface StateRow {
  rule_id: string;
  device: string;
  version: number;
  state: Json;
}

export interface AlertRow {
  id: string;
  rule_id: string;
  rule_name: string | null;
  device: string;
  metric: string | null;
  severity: AlertSeverity;
  status: AlertStatus;
  opened_at: number;
  fired_at: number | null;
  closed_at: number | null;
  value: number | null;
  peak: number | null;
  paged: Bool;
  quiet: 'backfilled' | null;
  flapping: Bool;
  flaps: number;
  summary: string;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  updated_at: number;
}

export interface DeliveryRow {
  id: string;
  alert_id: string;
  rule_id: string;
  device: string;
  event: string;
  url: string;
  body: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  last_status: number | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
  dead_at: number | null;
}

const json = <T>(v: Json): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;
const bool = (v: Bool) => v === true || v === 1;
const num = (v: number | string | null) => (v === null ? null : Number(v));

export function ruleFromRow(r: RuleRow): RuleRecord {
  return {
    id: r.id,
    name: r.name,
    enabled: bool(r.enabled),
    spec: json<RuleSpec>(r.spec),
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    deletedAt: num(r.deleted_at),
  };
}

export function stateFromRow(r: StateRow): StoredState {
  return {
    ruleId: r.rule_id,
    device: r.device,
    version: Number(r.version),
    state: json<RuleState>(r.state),
  };
}

export function alertFromRow(r: AlertRow): AlertRecord {
  return {
    id: r.id,
    ruleId: r.rule_id,
    ruleName: r.rule_name,
    device: r.device,
    metric: r.metric,
    severity: r.severity,
    status: r.status,
    openedAt: Number(r.opened_at),
    firedAt: num(r.fired_at),
    closedAt: num(r.closed_at),
    value: r.value === null ? null : Number(r.value),
    peak: r.peak === null ? null : Number(r.peak),
    paged: bool(r.paged),
    quiet: r.quiet,
    flapping: bool(r.flapping),
    flaps: Number(r.flaps),
    summary: r.summary,
    acknowledgedAt: num(r.acknowledged_at),
    acknowledgedBy: r.acknowledged_by,
    updatedAt: Number(r.updated_at),
  };
}

export function deliveryFromRow(r: DeliveryRow): DeliveryRecord {
  return {
    id: r.id,
    alertId: r.alert_id,
    ruleId: r.rule_id,
    device: r.device,
    event: r.event,
    url: r.url,
    body: r.body,
    state: r.state,
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    lastError: r.last_error,
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    deliveredAt: num(r.delivered_at),
    deadAt: num(r.dead_at),
  };
}

/** The columns of an alert write, in the order both stores' upserts list them. */
export function alertParams(a: AlertWrite): (string | number | null)[] {
  return [
    a.id,
    a.ruleId,
    a.device,
    a.metric,
    a.severity,
    a.status,
    a.openedAt,
    a.firedAt,
    a.closedAt,
    a.value,
    a.peak,
    a.paged ? 1 : 0,
    a.quiet,
    a.flapping ? 1 : 0,
    a.flaps,
    a.summary,
    a.updatedAt,
  ];
}

export const ALERT_COLUMNS =
  'id, rule_id, device, metric, severity, status, opened_at, fired_at, closed_at, value, peak, paged, quiet, flapping, flaps, summary, updated_at';

/** Engine writes never touch the acknowledgement columns; an empty summary keeps the last one. */
export const ALERT_UPDATE = `status = excluded.status, severity = excluded.severity,
  fired_at = excluded.fired_at, closed_at = excluded.closed_at, value = excluded.value,
  peak = excluded.peak, paged = excluded.paged, quiet = excluded.quiet,
  flapping = excluded.flapping, flaps = excluded.flaps,
  summary = CASE WHEN excluded.summary = '' THEN alerts.summary ELSE excluded.summary END,
  updated_at = excluded.updated_at`;

export const ALERT_SELECT = `SELECT a.*, r.name AS rule_name FROM alerts a
  LEFT JOIN alert_rules r ON r.id = a.rule_id`;
