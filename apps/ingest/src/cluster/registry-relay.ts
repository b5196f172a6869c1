import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER, REGISTRY_STORE } from '../injection.js';
import { RegistryEvents } from '../registry/registry-events.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { CLUSTER_BUS, type ClusterBus } from './cluster-bus.js';
import type { RegistryClusterEvent } from './cluster-messages.js';

const RELAYED = ['device.revoked', 'device.updated', 'token.revoked'] as const;
/** Replicas' clocks may differ by this much when revocations are caught up after an outage. */
const CLOCK_SKEW_MS = 10_000;
const PAGE = 500;

/**
 * Relays registry events between replicas: each one raised here is sent on the cluster bus,
 * and each one received is raised here, so listeners (the broker dropping a revoked device's
 * session, the desired-config sender, token caches) act on every replica (PROTOCOL.md §2).
 */
@Injectable()
export class RegistryRelay implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly offs: (() => void)[] = [];
  /** Set while a received event is raised, so it is not sent back out. */
  private relaying = false;

  private readonly log: Logger;

  constructor(
    @Inject(CLUSTER_BUS) private readonly bus: ClusterBus,
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(LOGGER) logger: Logger,
    private readonly events: RegistryEvents,
  ) {
    this.log = logger.child({ module: 'registry-relay' });
  }

  onApplicationBootstrap(): void {
    if (!this.bus.clustered) return;
    const send = (event: RegistryClusterEvent) => {
      if (!this.relaying) this.bus.publish(event);
    };
    const onRevoked = ({ deviceId, at }: { deviceId: string; at: number }) =>
      send({ type: 'device.revoked', deviceId, at });
    const onUpdated = ({ deviceId, fields }: { deviceId: string; fields: readonly string[] }) =>
      send({ type: 'device.updated', deviceId, fields: [...fields] });
    const onToken = ({ tokenId }: { tokenId: string }) => send({ type: 'token.revoked', tokenId });
    this.events.on('device.revoked', onRevoked);
    this.events.on('device.updated', onUpdated);
    this.events.on('token.revoked', onToken);
    this.offs.push(
      () => this.events.off('device.revoked', onRevoked),
      () => this.events.off('device.updated', onUpdated),
      () => this.events.off('token.revoked', onToken),
      this.bus.onMessage(({ event }) => {
        if (!(RELAYED as readonly string[]).includes(event.type)) return;
        this.relaying = true;
        try {
          this.raise(event as RegistryClusterEvent);
        } finally {
          this.relaying = false;
        }
      }),
      this.bus.onReconnected((lostAt) => void this.catchUpRevocations(lostAt)),
    );
  }

  /**
   * Revocations sent while the bus was down never arrived: the registry has them. Each one
   * since the outage began is raised here again, so sessions of revoked devices still open on
   * this replica are dropped (PROTOCOL.md §2).
   */
  private async catchUpRevocations(lostAt: number): Promise<void> {
    const since = lostAt - CLOCK_SKEW_MS;
    let after: string | undefined;
    let raised = 0;
    try {
      do {
        const page = await this.store.listDevices({
          status: 'revoked',
          limit: PAGE,
          ...(after ? { after } : {}),
        });
        for (const d of page.items) {
          if (d.revokedAt === null || d.revokedAt < since) continue;
          this.relaying = true;
          try {
            this.events.emit('device.revoked', { deviceId: d.id, at: d.revokedAt });
          } finally {
            this.relaying = false;
          }
          raised++;
        }
        after = page.next ?? undefined;
      } while (after);
      if (raised > 0) this.log.info({ devices: raised }, 'revocations caught up after an outage');
    } catch (err) {
      this.log.warn({ err }, 'could not catch up revocations after an outage');
    }
  }

  beforeApplicationShutdown(): void {
    for (const off of this.offs.splice(0)) off();
  }

  private raise(event: RegistryClusterEvent): void {
    switch (event.type) {
      case 'device.revoked':
        this.events.emit('device.revoked', { deviceId: event.deviceId, at: event.at });
        return;
      case 'device.updated':
        this.events.emit('device.updated', { deviceId: event.deviceId, fields: event.fields });
        return;
      case 'token.revoked':
        this.events.emit('token.revoked', { tokenId: event.tokenId });
        return;
    }
  }
}
