import type { RolloutDeviceView, RolloutProgressView } from './ota-schemas.js';
import type { RolloutDeviceRecord, RolloutRecord } from './ota-store.js';
import { summarize } from './rollout.js';

/** Rollouts as the API, the stream and the CLI show them: ISO times, seconds, progress. */

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function rolloutListItem(r: RolloutRecord) {
  return {
    id: r.id,
    firmwareId: r.firmwareId,
    component: r.component,
    version: r.version,
    rollbackTarget: r.rollbackTarget,
    target: r.target,
    plan: {
      waves: [...r.plan.waves],
      soakSeconds: r.plan.soakMs / 1000,
      abortFailureRate: r.plan.abortFailureRate,
      minDevices: r.plan.minDevices,
      offerTimeoutSeconds: r.plan.offerTimeoutMs / 1000,
      updateTimeoutSeconds: r.plan.updateTimeoutMs / 1000,
    },
    status: r.status,
    reason: r.reason,
    currentWave: r.currentWave,
    createdBy: r.createdBy,
    createdAt: iso(r.createdAt)!,
    updatedAt: iso(r.updatedAt)!,
    finishedAt: iso(r.finishedAt),
  };
}

export function rolloutProgressView(
  r: RolloutRecord,
  devices: readonly RolloutDeviceRecord[],
): RolloutProgressView {
  const summary = summarize(r.plan, r, devices);
  return {
    ...rolloutListItem(r),
    waves: summary.waves.map((w) => ({
      ...w,
      startedAt: iso(w.startedAt),
      completedAt: iso(w.completedAt),
      soakUntil: iso(w.soakUntil),
    })),
    totals: summary.totals,
  };
}

export function rolloutDeviceView(d: RolloutDeviceRecord): RolloutDeviceView {
  return {
    deviceId: d.deviceId,
    position: d.position,
    wave: d.wave,
    state: d.state,
    reason: d.reason,
    detail: d.detail,
    version: d.version,
    offeredAt: iso(d.offeredAt),
    updatedAt: iso(d.updatedAt)!,
  };
}
