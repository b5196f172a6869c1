import { type BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../injection.js';
import { LiveEvents } from '../stream/live-events.js';
import { OTA_STORE, type OtaStore, type RolloutDeviceRecord } from './ota-store.js';
import { rolloutDeviceView, rolloutProgressView } from './rollout-views.js';

/** Rollout summaries are sent at most this often per rollout (they read every device). */
const COALESCE_MS = 200;

/**
 * Rollout progress on the live stream (`rollouts` events): each device change at once, and
 * the rollout's summary per wave shortly after any change, coalesced so a wave of thousands
 * of reports costs a few summaries, and none while nobody listens.
 */
@Injectable()
export class RolloutProgress implements BeforeApplicationShutdown {
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly log: Logger;

  constructor(
    @Inject(OTA_STORE) private readonly store: OtaStore,
    private readonly live: LiveEvents,
    @Inject(LOGGER) logger: Logger,
  ) {
    this.log = logger.child({ module: 'rollout-progress' });
  }

  beforeApplicationShutdown(): void {
    for (const timer of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }

  device(record: RolloutDeviceRecord): void {
    if (this.live.listenerCount('rollouts') > 0) {
      this.live.emit('rollouts', {
        kind: 'device',
        rolloutId: record.rolloutId,
        device: rolloutDeviceView(record),
      });
    }
    this.changed(record.rolloutId);
  }

  changed(rolloutId: string): void {
    if (this.pending.has(rolloutId) || this.live.listenerCount('rollouts') === 0) return;
    const timer = setTimeout(() => {
      this.pending.delete(rolloutId);
      this.emitSummary(rolloutId).catch((err: unknown) =>
        this.log.warn({ err, rolloutId }, 'could not send rollout progress'),
      );
    }, COALESCE_MS);
    timer.unref();
    this.pending.set(rolloutId, timer);
  }

  private async emitSummary(rolloutId: string): Promise<void> {
    const rollout = await this.store.getRollout(rolloutId);
    if (!rollout) return;
    const devices = await this.store.listRolloutDevices(rolloutId);
    this.live.emit('rollouts', {
      kind: 'progress',
      rolloutId,
      rollout: rolloutProgressView(rollout, devices),
    });
  }
}
