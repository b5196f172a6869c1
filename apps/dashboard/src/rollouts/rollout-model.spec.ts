import { describe, expect, it } from 'vitest';
import {
  applyRolloutEvent,
  applyToList,
  progressText,
  type RolloutDetail,
  targetText,
} from './rollout-model.js';

const counts = { pending: 0, offered: 0, updating: 0, succeeded: 0, failed: 0, rolledBack: 0 };
const detail: RolloutDetail = {
  id: 'r-1',
  firmwareId: 'fw-1',
  component: 'main',
  version: '1.2.0',
  target: { tags: { site: 'north' } },
  plan: { waves: [10, 100], soakSeconds: 600, abortFailureRate: 0.1, minDevices: 5 },
  status: 'running',
  reason: null,
  currentWave: 0,
  createdBy: 'ana',
  createdAt: '2026-01-01T00:00:00Z',
  finishedAt: null,
  waves: [],
  totals: { ...counts, pending: 2, devices: 2, finished: 0, failureRate: 0 },
  devices: [
    {
      deviceId: 'a',
      position: 0,
      wave: 0,
      state: 'offered',
      reason: null,
      detail: null,
      version: null,
      offeredAt: null,
      updatedAt: '2026-01-01T00:00:00Z',
    },
    {
      deviceId: 'b',
      position: 1,
      wave: 1,
      state: 'pending',
      reason: null,
      detail: null,
      version: null,
      offeredAt: null,
      updatedAt: '2026-01-01T00:00:00Z',
    },
  ],
};

describe('rollout model', () => {
  it('applies a device event in place and a progress event to the summary', () => {
    const failed = { ...detail.devices[0]!, state: 'failed', reason: 'signature invalid' };
    const next = applyRolloutEvent(detail, { kind: 'device', rolloutId: 'r-1', device: failed });
    expect(next.devices[0]).toEqual(failed);
    expect(detail.devices[0]!.state).toBe('offered');
    const paused = applyRolloutEvent(next, {
      kind: 'progress',
      rolloutId: 'r-1',
      rollout: { ...detail, status: 'paused', devices: undefined } as never,
    });
    expect(paused.status).toBe('paused');
    expect(paused.devices).toBe(next.devices);
    expect(applyRolloutEvent(detail, { kind: 'device', rolloutId: 'other', device: failed })).toBe(
      detail,
    );
  });

  it('updates a listed rollout, and says when the event is for one it has not seen', () => {
    const list = [detail];
    const e = {
      kind: 'progress' as const,
      rolloutId: 'r-1',
      rollout: { ...detail, status: 'completed' as const },
    };
    expect((applyToList(list, e) as RolloutDetail[])[0]!.status).toBe('completed');
    expect(applyToList(list, { ...e, rolloutId: 'r-2' })).toBe('unknown');
  });

  it('describes progress and targets', () => {
    expect(
      progressText({
        ...counts,
        succeeded: 10,
        failed: 1,
        rolledBack: 1,
        updating: 3,
        devices: 40,
        finished: 12,
        failureRate: 0.16,
      }),
    ).toBe('12 of 40 done · 2 failed · 3 updating');
    expect(targetText({ tags: { site: 'north' }, devices: ['a'], gateways: ['gw-1'] })).toBe(
      'site=north, 1 device, children of gw-1',
    );
    expect(targetText({})).toBe('everything');
  });
});
