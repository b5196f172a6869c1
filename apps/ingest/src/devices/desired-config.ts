import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from 'pino';
import { Broker } from '../broker/broker.js';
import { CLUSTER_BUS, type ClusterBus } from '../cluster/cluster-bus.js';
import { LOGGER, REGISTRY_STORE } from '../injection.js';
import { RegistryEvents } from '../registry/registry-events.js';
import type { RegistryStore } from '../registry/registry-store.js';

/**
 * Sends a device its desired configuration as a signed `config.desired` command
 * (PROTOCOL.md §8): when an operator changes it (PATCH /devices/{id}), and when the device
 * subscribes to its commands while the version it reports is older than the desired one.
 * In cluster mode the change reaches every replica (cluster/registry-relay.ts) and the one
 * holding the session sends it; after a cluster bus outage, when changes may have been
 * missed, every device connected here whose reported version is behind gets it again.
 */
@Injectable()
export class DesiredConfigSender implements OnApplicationBootstrap {
  private readonly log: Logger;

  constructor(
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(LOGGER) logger: Logger,
    private readonly broker: Broker,
    private readonly events: RegistryEvents,
    @Inject(CLUSTER_BUS) private readonly bus: ClusterBus,
  ) {
    this.log = logger.child({ module: 'desired-config' });
  }

  onApplicationBootstrap(): void {
    this.events.on('device.updated', ({ deviceId, fields }) => {
      if (fields.includes('desiredConfig')) void this.send(deviceId, true);
    });
    this.broker.onCommandsSubscribed(({ deviceId }) => void this.send(deviceId, false));
    this.bus.onReconnected(() => void this.catchUp());
  }

  /** One device at a time: a catch-up must not flood the registry. */
  private async catchUp(): Promise<void> {
    for (const deviceId of this.broker.connectedDevices()) await this.send(deviceId, false);
  }

  private async send(deviceId: string, changed: boolean): Promise<void> {
    try {
      const device = await this.store.getDevice(deviceId);
      if (device?.status !== 'active' || device.desiredConfig === null) return;
      const reported = (device.reportedState as { config_version?: unknown } | null)
        ?.config_version;
      const behind = typeof reported !== 'number' || reported < device.desiredConfigVersion;
      if (!changed && !behind) return;
      if (!this.broker.isOnline(deviceId) && changed) return; // sent when it subscribes
      await this.broker.publishCommand(deviceId, {
        type: 'config.desired',
        version: device.desiredConfigVersion,
        config: device.desiredConfig as Record<string, unknown>,
      });
    } catch (err) {
      this.log.warn({ err, deviceId }, 'could not send the desired configuration');
    }
  }
}
