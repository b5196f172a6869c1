import { EventEmitter } from 'node:events';
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { AlertMessage } from '../alerts/notification.js';
import { CLUSTER_BUS, type ClusterBus } from '../cluster/cluster-bus.js';
import {
  chunkReadings,
  isLiveEvent,
  type LiveClusterEvent,
  type LiveType,
} from '../cluster/cluster-messages.js';
import type { RolloutStreamEvent } from '../ota/ota-schemas.js';
import { type LiveEventMap, LiveEvents } from './live-events.js';

type Handler<K extends LiveType> = (...args: LiveEventMap[K]) => void;

/**
 * What SSE clients watch: this replica's live events and, in cluster mode, those of the
 * other replicas. Each event starts on exactly one replica (the one that accepted the
 * reading, holds the session, committed the transition), is sent on the cluster bus only
 * while another replica has a client for its type, and reaches each client once. Events
 * from other replicas are not raised on `LiveEvents`: the alert engine evaluates a reading
 * only where it was accepted.
 */
@Injectable()
export class LiveStream implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly remote = new EventEmitter<LiveEventMap>();
  private readonly watchers = new Map<LiveType, number>();
  private readonly offs: (() => void)[] = [];

  constructor(
    private readonly live: LiveEvents,
    @Inject(CLUSTER_BUS) private readonly bus: ClusterBus,
  ) {
    this.remote.setMaxListeners(0);
  }

  onApplicationBootstrap(): void {
    if (!this.bus.clustered) return;
    const onReadings = ({ publisher, points }: LiveEventMap['readings'][0]) => {
      if (!this.bus.othersWantLive('readings')) return;
      const wire = points.map((p) => ({
        device: p.device,
        metric: p.metric,
        timeMs: p.timeMs,
        value: p.value,
        ...(p.unit ? { unit: p.unit } : {}),
        ...(p.backfilled ? { backfilled: true } : {}),
      }));
      for (const message of chunkReadings(publisher, wire)) this.bus.publish(message);
    };
    const onStatus = (s: LiveEventMap['status'][0]) => {
      if (this.bus.othersWantLive('status')) this.bus.publish({ type: 'status', ...s });
    };
    const onAlerts = (message: AlertMessage) => {
      if (this.bus.othersWantLive('alerts')) {
        this.bus.publish({
          type: 'alerts',
          message: message as unknown as Extract<LiveClusterEvent, { type: 'alerts' }>['message'],
        });
      }
    };
    const onRollouts = (event: RolloutStreamEvent) => {
      if (this.bus.othersWantLive('rollouts')) {
        this.bus.publish({
          type: 'rollouts',
          event: event as unknown as Extract<LiveClusterEvent, { type: 'rollouts' }>['event'],
        });
      }
    };
    this.live.on('readings', onReadings);
    this.live.on('status', onStatus);
    this.live.on('alerts', onAlerts);
    this.live.on('rollouts', onRollouts);
    this.offs.push(
      () => this.live.off('readings', onReadings),
      () => this.live.off('status', onStatus),
      () => this.live.off('alerts', onAlerts),
      () => this.live.off('rollouts', onRollouts),
      this.bus.onMessage(({ event }) => {
        if (isLiveEvent(event)) this.raiseRemote(event);
      }),
    );
  }

  beforeApplicationShutdown(): void {
    for (const off of this.offs.splice(0)) off();
  }

  /** Listens to events of `type` from every replica; returns the way to stop. */
  on<K extends LiveType>(type: K, handler: Handler<K>): () => void {
    // The emitters' generic signatures do not narrow on K; LiveEventMap keeps them consistent.
    const local = this.live as unknown as EventEmitter;
    const remote = this.remote as unknown as EventEmitter;
    const listener = handler as (...args: unknown[]) => void;
    local.on(type, listener);
    remote.on(type, listener);
    const count = (this.watchers.get(type) ?? 0) + 1;
    this.watchers.set(type, count);
    if (count === 1) this.bus.wantLive(type, true);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      local.off(type, listener);
      remote.off(type, listener);
      const left = (this.watchers.get(type) ?? 1) - 1;
      this.watchers.set(type, left);
      if (left === 0) this.bus.wantLive(type, false);
    };
  }

  private raiseRemote(event: LiveClusterEvent): void {
    switch (event.type) {
      case 'readings':
        this.remote.emit('readings', {
          publisher: event.publisher,
          points: event.points.map((p) => ({ ...p, tags: {} })),
        });
        return;
      case 'status':
        this.remote.emit('status', {
          deviceId: event.deviceId,
          online: event.online,
          reason: event.reason,
          at: event.at,
        });
        return;
      case 'alerts':
        this.remote.emit('alerts', event.message as unknown as AlertMessage);
        return;
      case 'rollouts':
        this.remote.emit('rollouts', event.event as unknown as RolloutStreamEvent);
        return;
    }
  }
}
