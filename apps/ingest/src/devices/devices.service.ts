import { Inject, Injectable } from '@nestjs/common';
import { reportedStateSchema } from '@outpost/protocol/state';
import type { z } from 'zod';
import type { IngestConfig } from '../config.js';
import { NotFound } from '../errors.js';
import { CLOCK, type Clock, CONFIG, REGISTRY_STORE } from '../injection.js';
import { RegistryEvents } from '../registry/registry-events.js';
import { DeviceExists, type DeviceRecord, type RegistryStore } from '../registry/registry-store.js';
import {
  DeviceKindMismatch,
  DeviceRevoked,
  GatewayInvalid,
  ImportInvalid,
} from './device-errors.js';
import { planImport } from './device-import.js';
import type { DeviceView, listDevicesQuerySchema, PatchDevice } from './device-schemas.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The device as the API shows it: connectivity state and outbox stats made explicit. */
export function deviceView(d: DeviceRecord): DeviceView {
  const reported = reportedStateSchema.safeParse(d.reportedState);
  const outbox = reported.success && reported.data.outbox ? reported.data.outbox : null;
  const state =
    d.status === 'revoked'
      ? 'revoked'
      : d.connectivity.online
        ? 'online'
        : d.connectivity.lastSeen === null
          ? 'never_connected'
          : outbox && outbox.pending > 0
            ? 'buffering'
            : 'offline';
  return {
    id: d.id,
    kind: d.kind,
    name: d.name,
    tags: d.tags,
    gateway: d.gateway,
    policy: d.policy,
    status: d.status,
    connectivity: {
      state,
      online: d.connectivity.online,
      lastSeen: iso(d.connectivity.lastSeen),
      disconnectReason: d.connectivity.disconnectReason,
    },
    outbox: outbox
      ? {
          pending: outbox.pending,
          bytes: outbox.bytes,
          oldestS: outbox.oldest_s,
          dropped: outbox.dropped,
        }
      : null,
    keys: d.keys.map((k) => ({ kid: k.kid, alg: k.alg, addedAt: iso(k.addedAt)! })),
    reportedState: d.reportedState,
    reportedAt: iso(d.reportedAt),
    desiredConfig: d.desiredConfig,
    desiredConfigVersion: d.desiredConfigVersion,
    revokedAt: iso(d.revokedAt),
    createdAt: iso(d.createdAt)!,
    updatedAt: iso(d.updatedAt)!,
  };
}

@Injectable()
export class DevicesService {
  constructor(
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    private readonly events: RegistryEvents,
  ) {}

  async list(query: z.output<typeof listDevicesQuerySchema>) {
    const page = await this.store.listDevices({
      limit: query.limit,
      ...(query.after ? { after: query.after } : {}),
      ...(query.kind ? { kind: query.kind } : {}),
      ...(query.gateway ? { gateway: query.gateway } : {}),
      ...(query.status ? { status: query.status } : {}),
      ...(query.q ? { text: query.q } : {}),
      ...(query.tag ? { tags: query.tag } : {}),
    });
    return { items: page.items.map(deviceView), next: page.next };
  }

  async get(id: string): Promise<DeviceRecord> {
    const device = await this.store.getDevice(id);
    if (!device) throw new NotFound('device', id);
    return device;
  }

  async patch(id: string, patch: PatchDevice): Promise<DeviceRecord> {
    const current = await this.get(id);
    if (current.status === 'revoked') throw new DeviceRevoked(id);
    const updated = await this.store.updateDevice(
      id,
      {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.tags ? { tags: patch.tags } : {}),
        ...(patch.policy ? { policy: patch.policy } : {}),
        ...(patch.desiredConfig ? { desiredConfig: patch.desiredConfig } : {}),
      },
      this.clock.now(),
    );
    if (!updated) throw new NotFound('device', id);
    this.events.emit('device.updated', { deviceId: id, fields: Object.keys(patch) });
    return updated;
  }

  async revoke(id: string): Promise<DeviceRecord> {
    const now = this.clock.now();
    const device = await this.store.revokeDevice(id, now);
    if (!device) throw new NotFound('device', id);
    this.events.emit('device.revoked', { deviceId: id, at: device.revokedAt ?? now });
    return device;
  }

  /** Validates the whole file, then writes every device in one transaction, or none. */
  async import(input: { csv: string } | { json: unknown }): Promise<{ imported: number }> {
    const plan = planImport(input, this.config.limits.importMaxRows);
    if (!plan.ok) throw new ImportInvalid(plan.errors, plan.errorCount);
    const gatewayErrors = [];
    for (const gw of plan.gatewaysToCheck) {
      const record = await this.store.getDevice(gw);
      const problem = !record
        ? 'does not exist'
        : record.kind !== 'gateway'
          ? 'is not a gateway'
          : record.status === 'revoked'
            ? 'is revoked'
            : null;
      if (problem) {
        for (const d of plan.devices.filter((x) => x.gateway === gw).slice(0, 100)) {
          gatewayErrors.push({
            line: plan.lineOf.get(d.id)!,
            id: d.id,
            message: `gateway ${gw} ${problem}`,
          });
        }
      }
    }
    if (gatewayErrors.length > 0) throw new ImportInvalid(gatewayErrors, gatewayErrors.length);
    try {
      await this.store.insertDevices(plan.devices, this.clock.now());
    } catch (err) {
      if (!(err instanceof DeviceExists)) throw err;
      const errors = err.ids.map((id) => ({
        line: plan.lineOf.get(id) ?? 0,
        id,
        message: 'device already exists',
      }));
      throw new ImportInvalid(errors, err.ids.length);
    }
    return { imported: plan.devices.length };
  }

  /** Checks that `gateway` can be the parent of a new device. */
  async checkGateway(gateway: string): Promise<void> {
    const record = await this.store.getDevice(gateway);
    if (!record) throw new GatewayInvalid(gateway, 'does not exist');
    if (record.kind !== 'gateway') throw new GatewayInvalid(gateway, 'is not a gateway');
    if (record.status === 'revoked') throw new GatewayInvalid(gateway, 'is revoked');
  }

  /** Finds or creates the pending device an enrollment is for, checking it matches. */
  async prepareForEnrollment(input: {
    deviceId: string;
    kind: 'device' | 'gateway';
    gateway?: string | undefined;
    name?: string | undefined;
    tags?: Record<string, string> | undefined;
  }): Promise<DeviceRecord> {
    if (input.gateway) {
      if (input.kind === 'gateway') {
        throw new GatewayInvalid(input.gateway, 'cannot be the parent of another gateway');
      }
      await this.checkGateway(input.gateway);
    }
    let device = await this.store.getDevice(input.deviceId);
    if (!device) {
      try {
        await this.store.insertDevices(
          [
            {
              id: input.deviceId,
              kind: input.kind,
              name: input.name ?? null,
              tags: input.tags ?? {},
              gateway: input.gateway ?? null,
            },
          ],
          this.clock.now(),
        );
      } catch (err) {
        if (!(err instanceof DeviceExists)) throw err;
      }
      device = await this.get(input.deviceId);
    }
    if (device.status === 'revoked') throw new DeviceRevoked(device.id);
    if (device.kind !== input.kind)
      throw new DeviceKindMismatch(device.id, device.kind, input.kind);
    if (input.gateway && device.gateway !== input.gateway) {
      throw new GatewayInvalid(
        input.gateway,
        `is not the gateway of ${device.id} (${device.gateway ?? 'none'})`,
      );
    }
    return device;
  }
}
