/**
 * Response shapes of the public API as the dashboard reads them (apps/ingest: device-schemas,
 * telemetry-schemas, alert-schemas, the stream controller). Only the fields shown here.
 */
export type ConnectivityState = 'online' | 'offline' | 'buffering' | 'never_connected' | 'revoked';

export interface Outbox {
  pending: number;
  bytes: number;
  oldestS: number;
  dropped: number;
}

export interface PortReport {
  path: string;
  state: 'open' | 'missing' | 'silent' | string;
}

/** PROTOCOL.md §6 reported state; read defensively, a device reports what it can. */
export interface ReportedState {
  firmware?: { version?: string; components?: Record<string, string> };
  agent?: { version?: string };
  uptime_s?: number;
  outbox?: { pending?: number; bytes?: number; oldest_s?: number; dropped?: number };
  ports?: PortReport[];
  config_version?: number;
}

export interface Device {
  id: string;
  kind: 'device' | 'gateway';
  name: string | null;
  tags: Record<string, string>;
  gateway: string | null;
  status: 'pending' | 'active' | 'revoked';
  connectivity: {
    state: ConnectivityState;
    online: boolean;
    lastSeen: string | null;
    disconnectReason: string | null;
  };
  outbox: Outbox | null;
  reportedState: ReportedState | null;
  reportedAt: string | null;
  createdAt: string;
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

export interface Series {
  points: { time: string; value: number | string | boolean | null }[];
}

export interface LatestMetric {
  metric: string;
  time: string;
  value: number | string | boolean;
  unit?: string;
}

export interface Latest {
  metrics: LatestMetric[];
}

export type Severity = 'info' | 'warning' | 'critical';
export type AlertState = 'pending' | 'firing' | 'resolved' | 'cancelled';

export interface Alert {
  id: string;
  ruleId: string;
  ruleName: string | null;
  device: string;
  metric: string | null;
  severity: Severity;
  state: AlertState;
  openedAt: string;
  firedAt: string | null;
  closedAt: string | null;
  firingMs: number | null;
  value: number | null;
  peak: number | null;
  paged: boolean;
  quiet: string | null;
  flapping: boolean;
  flaps: number;
  /** The explanation of its latest transition. */
  summary: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  updatedAt: string;
}

/** SSE `readings` event. */
export interface ReadingsEvent {
  publisher: string;
  readings: {
    device: string;
    metric: string;
    time: string;
    value: number | string | boolean | null;
    unit?: string;
    backfilled?: boolean;
  }[];
}

/** SSE `status` event. */
export interface StatusEvent {
  deviceId: string;
  online: boolean;
  reason: string | null;
  at: string;
}

/** SSE `alerts` event: one transition, with what explains it (alerts/notification.ts). */
export interface AlertMessage {
  id: string;
  type: string;
  at: string;
  summary: string;
  alert: {
    id: string;
    ruleName: string;
    device: string;
    metric: string | null;
    severity: Severity;
    state: AlertState;
  };
  explain: {
    condition: string;
    value: number | null;
    limit: number | null;
    clearLimit: number | null;
    for: string | null;
    clearFor: string | null;
    heldMs: number | null;
    incidentMs: number | null;
    peak: number | null;
    silentMs: number | null;
    backfilled: boolean;
    timer: boolean;
    reason: string;
  };
  acknowledged: { at: string; by: string } | null;
}
