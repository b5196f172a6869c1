import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LEASES, type Leases } from '../cluster/lease.js';
import type { IngestConfig } from '../config.js';
import { CLOCK, type Clock, CONFIG, LOGGER, REGISTRY_STORE } from '../injection.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { LiveEvents } from '../stream/live-events.js';
import { LOST_SESSION, staleAtStart } from './connectivity.js';

/**
 * Sessions that ended with their replica's process: a clean shutdown records its devices
 * offline, a process killed (kill -9, power loss) cannot, and the registry would show them
 * online until they reconnect, or for ever. They are recorded offline when the replica
 * starts again (`server_restart`) and, for a replica gone for good, by the survivor that
 * adopts its outbox (`replica_lost`). Each device changed is announced as the broker
 * announces a disconnect, so the stream and the dashboard see it.
 */
@Injectable()
export class LostSessions {
  private readonly log: Logger;

  constructor(
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(LOGGER) logger: Logger,
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(LEASES) private readonly leases: Leases,
    private readonly live: LiveEvents,
  ) {
    this.log = logger.child({ module: 'lost-sessions' });
  }

  /**
   * Before the broker accepts connections. With a shared registry this replica owns its
   * outbox lease by now (telemetry-pipeline.ts), so a previous run under the same id is dead
   * or has lost it: its sessions are gone either way.
   */
  async serverStarted(): Promise<void> {
    const replica = staleAtStart(this.leases.shared, this.config.replicaId);
    await this.markOffline(replica, LOST_SESSION.serverRestart);
  }

  /** A survivor found `replicaId` dead (outbox-adoption.ts). */
  async replicaLost(replicaId: string): Promise<void> {
    await this.markOffline(replicaId, LOST_SESSION.replicaLost);
  }

  private async markOffline(replica: string | null, reason: string): Promise<void> {
    const marked = await this.store.markReplicaOffline(replica, reason);
    if (marked.length === 0) return;
    this.log.info(
      { replica: replica ?? 'any', reason, devices: marked.length },
      'devices left online by a process that ended without recording it are offline',
    );
    const now = this.clock.now();
    for (const { deviceId, lastSeen } of marked) {
      // When the device went away is unknown; its last sign of life is what is known. The
      // alert engine takes a status event as the device heard at `at`: now would be false.
      this.live.emit('status', { deviceId, online: false, reason, at: lastSeen ?? now });
    }
  }
}
