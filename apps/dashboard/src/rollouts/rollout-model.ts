/**
 * Rollouts as `GET /api/v1/rollouts[/{id}]` and the `rollouts` stream event carry them
 * (apps/ingest/src/ota/ota-schemas.ts), and the pure steps the views take with them.
 */
export type RolloutStatus = 'running' | 'paused' | 'completed' | 'aborted' | 'cancelled';

export interface Counts {
  pending: number;
  offered: number;
  updating: number;
  succeeded: number;
  failed: number;
  rolledBack: number;
}

export interface WaveView {
  index: number;
  /** Cumulative share of the targets, in percent. */
  percent: number;
  devices: number;
  phase: 'pending' | 'active' | 'soaking' | 'done';
  startedAt: string | null;
  completedAt: string | null;
  soakUntil: string | null;
  counts: Counts;
}

export interface RolloutDevice {
  deviceId: string;
  position: number;
  wave: number;
  state: string;
  reason: string | null;
  detail: string | null;
  version: string | null;
  offeredAt: string | null;
  updatedAt: string;
}

/** A rollout as listed. */
export interface Rollout {
  id: string;
  firmwareId: string;
  component: string;
  version: string;
  target: { tags?: Record<string, string>; devices?: string[]; gateways?: string[] };
  plan: { waves: number[]; soakSeconds: number; abortFailureRate: number; minDevices: number };
  status: RolloutStatus;
  reason: string | null;
  currentWave: number;
  createdBy: string;
  createdAt: string;
  finishedAt: string | null;
}

export interface RolloutProgress extends Rollout {
  waves: WaveView[];
  totals: Counts & { devices: number; finished: number; failureRate: number };
}

export interface RolloutDetail extends RolloutProgress {
  devices: RolloutDevice[];
}

export type RolloutStreamEvent =
  | { kind: 'progress'; rolloutId: string; rollout: RolloutProgress }
  | { kind: 'device'; rolloutId: string; device: RolloutDevice };

export const isActive = (r: Pick<Rollout, 'status'>) =>
  r.status === 'running' || r.status === 'paused';
export const isFinished = (r: Pick<Rollout, 'status'>) => !isActive(r);

export const label = (r: Pick<Rollout, 'component' | 'version'>) => `${r.component} ${r.version}`;

/** `12 of 40 done · 1 failed · 3 updating`. */
export function progressText(t: RolloutProgress['totals']): string {
  const failed = t.failed + t.rolledBack;
  const parts = [`${t.finished} of ${t.devices} done`];
  if (failed > 0) parts.push(`${failed} failed`);
  if (t.offered + t.updating > 0) parts.push(`${t.offered + t.updating} updating`);
  return parts.join(' · ');
}

/** What a rollout targets, in one line. */
export function targetText(t: Rollout['target']): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(t.tags ?? {})) parts.push(`${k}=${v}`);
  if (t.devices?.length)
    parts.push(`${t.devices.length} device${t.devices.length === 1 ? '' : 's'}`);
  if (t.gateways?.length) parts.push(`children of ${t.gateways.join(', ')}`);
  return parts.join(', ') || 'everything';
}

/** The detail with one stream event applied; the same object when the event is for another. */
export function applyRolloutEvent(detail: RolloutDetail, e: RolloutStreamEvent): RolloutDetail {
  if (e.rolloutId !== detail.id) return detail;
  if (e.kind === 'progress') return { ...detail, ...e.rollout, devices: detail.devices };
  const i = detail.devices.findIndex((d) => d.deviceId === e.device.deviceId);
  if (i === -1) return detail;
  const devices = detail.devices.slice();
  devices[i] = e.device;
  return { ...detail, devices };
}

/** A list with one stream event applied: a known rollout's status and wave change in place. */
export function applyToList(items: Rollout[], e: RolloutStreamEvent): Rollout[] | 'unknown' {
  if (e.kind !== 'progress') return items;
  const i = items.findIndex((r) => r.id === e.rolloutId);
  if (i === -1) return 'unknown';
  const next = items.slice();
  next[i] = { ...items[i]!, ...e.rollout };
  return next;
}

/** Why the device is where it is: the reason of a failure, else the progress detail. */
export function deviceNote(d: Pick<RolloutDevice, 'reason' | 'detail'>): string {
  return d.reason ?? d.detail ?? '';
}
