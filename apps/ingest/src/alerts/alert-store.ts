import type { AlertSeverity } from '@outpost/protocol/events';
import type { AlertStatus, RuleState } from './evaluate.js';
import type { RuleRecord } from './rule.js';

/**
 * Where rules, alert state, alerts and the webhook delivery queue live. One port, two
 * implementations (SQLite, PostgreSQL), one contract suite (`alert-store.contract.ts`).
 * Times are epoch milliseconds.
 */

/** Injection token of the configured store. */
export const ALERT_STORE = Symbol('ALERT_STORE');

export interface AlertRecord {
  id: string;
  ruleId: string;
  /** The rule's current name (read only). */
  ruleName: string | null;
  device: string;
  metric: string | null;
  severity: AlertSeverity;
  status: AlertStatus;
  openedAt: number;
  firedAt: number | null;
  /** When it resolved or was cancelled. */
  closedAt: number | null;
  value: number | null;
  peak: number | null;
  paged: boolean;
  quiet: 'backfilled' | null;
  flapping: boolean;
  flaps: number;
  /** The explanation of its latest transition. */
  summary: string;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  updatedAt: number;
}

/** What the engine writes; acknowledgement is written only by `acknowledge`. */
export type AlertWrite = Omit<AlertRecord, 'ruleName' | 'acknowledgedAt' | 'acknowledgedBy'>;

export interface StoredState {
  ruleId: string;
  device: string;
  /** Bumped by every commit: the optimistic lock of this (rule, device). */
  version: number;
  state: RuleState;
}

export interface NewDelivery {
  id: string;
  alertId: string;
  ruleId: string;
  device: string;
  /** `alert.firing`, `alert.resolved`, `alert.acknowledged`. */
  event: string;
  url: string;
  /** The JSON body, exactly as it will be signed and sent. */
  body: string;
  createdAt: number;
}

export type DeliveryState = 'queued' | 'delivered' | 'dead';

export interface DeliveryRecord extends NewDelivery {
  state: DeliveryState;
  /** Attempts started, including one in progress. */
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  lastStatus: number | null;
  deliveredAt: number | null;
  deadAt: number | null;
  updatedAt: number;
}

export interface StateCommit {
  ruleId: string;
  device: string;
  /** The version the change was computed from; 0 when nothing was stored. */
  expectedVersion: number;
  state: RuleState;
  /** Alert rows to insert or update, in order (a resolve before the next open). */
  alerts: readonly AlertWrite[];
  /** Webhook notifications of these transitions, queued in the same transaction. */
  deliveries: readonly NewDelivery[];
  now: number;
}

/**
 * `state`: someone else changed this (rule, device) since it was read. `open_alert`: another
 * alert of this (rule, device) is already open. Either way nothing was written: re-read and
 * evaluate again.
 */
export type CommitResult =
  | { ok: true; version: number }
  | { ok: false; conflict: 'state' | 'open_alert' };

export interface AlertCursor {
  openedAt: number;
  id: string;
}

export interface AlertFilter {
  status?: readonly AlertStatus[];
  ruleId?: string;
  device?: string;
  severity?: AlertSeverity;
  acknowledged?: boolean;
  limit: number;
  /** Newest first; continue after this one. */
  after?: AlertCursor;
}

export interface AlertPage {
  items: AlertRecord[];
  next: AlertCursor | null;
}

export type AckOutcome =
  | { outcome: 'acknowledged' | 'already' | 'not_open'; alert: AlertRecord }
  | { outcome: 'not_found' };

export interface DeliveryFailure {
  at: number;
  error: string;
  status: number | null;
  /** When to try again; null makes it a dead letter. */
  retryAt: number | null;
}

export interface AlertStore {
  /** Applies pending migrations; safe from several replicas at once. */
  migrate(): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;

  insertRule(rule: RuleRecord, webhookSecret: string): Promise<void>;
  /** Deleted rules too (alerts keep naming them). */
  getRule(id: string): Promise<RuleRecord | null>;
  /** Rules not deleted, oldest first. */
  listRules(): Promise<RuleRecord[]>;
  /** Replaces name, enabled, spec, updatedAt and deletedAt of a rule not deleted. */
  updateRule(rule: RuleRecord): Promise<boolean>;
  ruleSecret(id: string): Promise<string | null>;
  setRuleSecret(id: string, secret: string, now: number): Promise<boolean>;

  getState(ruleId: string, device: string): Promise<StoredState | null>;
  /** 0 when nothing is stored. */
  stateVersion(ruleId: string, device: string): Promise<number>;
  /** States with a pending or firing alert: their timers run after a restart. */
  listActiveStates(): Promise<StoredState[]>;
  /**
   * Writes a new state, its alert rows and deliveries atomically, if the stored version is
   * still `expectedVersion`. At most one alert per (rule, device) is ever pending or firing,
   * whoever writes: the store refuses a second one.
   */
  commit(change: StateCommit): Promise<CommitResult>;
  /**
   * Several changes (of different rule/device pairs) in one transaction, each on its own:
   * a conflict refuses that change only. One durable write for a burst of transitions.
   */
  commitMany(changes: readonly StateCommit[]): Promise<CommitResult[]>;

  getAlert(id: string): Promise<AlertRecord | null>;
  listAlerts(filter: AlertFilter): Promise<AlertPage>;
  /**
   * Acknowledges an open alert once; `deliveries` are queued only by the call that did it.
   */
  acknowledge(
    id: string,
    by: string,
    at: number,
    deliveries: readonly NewDelivery[],
  ): Promise<AckOutcome>;

  /**
   * Takes up to `limit` queued deliveries due by `now`, counting an attempt for each and
   * hiding them from other callers for `leaseMs` (so a crashed sender's work comes back).
   * The deliveries of one (rule, device) to one URL are handed out in the order they were
   * queued, so a receiver never sees a resolve before its fire: a delivery waits while an
   * earlier one is queued (a dead letter no longer holds it up).
   */
  claimDeliveries(now: number, limit: number, leaseMs: number): Promise<DeliveryRecord[]>;
  /** Marks delivered, if `attempt` is still the latest attempt. */
  deliverySucceeded(id: string, attempt: number, at: number, status: number): Promise<void>;
  deliveryFailed(id: string, attempt: number, failure: DeliveryFailure): Promise<void>;
  getDelivery(id: string): Promise<DeliveryRecord | null>;
  /** Dead letters, most recent first. */
  listDeadDeliveries(limit: number, afterId?: string): Promise<DeliveryRecord[]>;
  /** Queues a dead letter again with a fresh attempt count; null if it is not dead. */
  retryDelivery(id: string, now: number): Promise<DeliveryRecord | null>;
  /** Forgets deliveries delivered before `before`; returns how many. */
  pruneDeliveries(before: number): Promise<number>;

  /** When devices were last heard from (offline rules), kept across restarts. */
  recordActivity(updates: readonly { device: string; at: number }[]): Promise<void>;
  loadActivity(): Promise<Map<string, number>>;
}
