import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { DeviceEventOf } from '@outpost/protocol/events';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Principal } from '../auth/access.js';
import { Broker } from '../broker/broker.js';
import type { IngestConfig } from '../config.js';
import { NotFound } from '../errors.js';
import {
  CLOCK,
  type Clock,
  CONFIG,
  LOGGER,
  METRICS,
  RANDOM,
  type Random,
  REGISTRY_STORE,
} from '../injection.js';
import type { DeviceFilter, DeviceRecord, RegistryStore } from '../registry/registry-store.js';
import { FirmwareService } from './firmware.service.js';
import { KeyedQueue } from './keyed-queue.js';
import { RolloutFinished, RolloutOverlaps, RolloutTargetInvalid } from './ota-errors.js';
import type { CreateRollout, ListRolloutsQuery, RolloutQuery } from './ota-schemas.js';
import { OTA_STORE, type OtaStore, type RolloutRecord, type RolloutTarget } from './ota-store.js';
import {
  applyReport,
  type ControlCommand,
  control,
  initialState,
  isTerminal,
  orderTargets,
  type RolloutPlan,
  waveEnds,
  waveOf,
} from './rollout.js';
import { RolloutProgress } from './rollout-progress.js';
import { RolloutRunner } from './rollout-runner.js';
import { rolloutDeviceView, rolloutListItem, rolloutProgressView } from './rollout-views.js';

type OtaEvent = DeviceEventOf<'ota.progress'> | DeviceEventOf<'ota.result'>;

/**
 * Enrolled devices, and the children of gateways: those never enroll themselves (a serial
 * sensor has no key), their gateway acts for them. Revoked devices never.
 */
function targetable(d: DeviceRecord): boolean {
  return d.status === 'active' || (d.status === 'pending' && d.gateway !== null);
}

/** Tries of a device report that keeps losing a race against a timeout or a second report. */
const REPORT_ATTEMPTS = 3;

/**
 * Rollouts: creation (targets resolved once, in a deterministic order, and split into
 * waves), listing and progress, pause/resume/cancel, and the devices' `ota.progress` and
 * `ota.result` events (PROTOCOL.md §7), recorded per device. Advancing is the runner's.
 */
@Injectable()
export class RolloutsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log: Logger;
  private readonly reports = new KeyedQueue();
  private readonly offs: (() => void)[] = [];
  private readonly ignored: Counter<'reason'>;
  private readonly results: Counter<'state'>;

  constructor(
    @Inject(OTA_STORE) private readonly store: OtaStore,
    @Inject(REGISTRY_STORE) private readonly registry: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(RANDOM) private readonly random: Random,
    @Inject(LOGGER) logger: Logger,
    @Inject(METRICS) metrics: Registry,
    private readonly firmware: FirmwareService,
    private readonly runner: RolloutRunner,
    private readonly progress: RolloutProgress,
    private readonly broker: Broker,
  ) {
    this.log = logger.child({ module: 'rollouts' });
    this.ignored = new Counter({
      name: 'outpost_ingest_ota_reports_ignored_total',
      help: 'OTA events from devices that changed nothing, by reason',
      labelNames: ['reason'],
      registers: [metrics],
    });
    this.results = new Counter({
      name: 'outpost_ingest_ota_device_results_total',
      help: 'Devices that finished an update, by final state',
      labelNames: ['state'],
      registers: [metrics],
    });
  }

  onApplicationBootstrap(): void {
    this.offs.push(
      this.broker.onDeviceEvent(({ deviceId, event }) => {
        if (event.type !== 'ota.progress' && event.type !== 'ota.result') return;
        // One device's reports are applied in the order they arrived.
        this.reports
          .run(deviceId, () => this.report(deviceId, event))
          .catch((err: unknown) =>
            this.log.error({ err, deviceId, rolloutId: event.rolloutId }, 'OTA report failed'),
          );
      }),
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    await this.reports.idle();
  }

  async create(input: CreateRollout, caller: Principal) {
    const firmware = await this.firmware.trustedFirmware(input.firmwareId);
    const targets = await this.resolve(input.target);
    if (targets.length === 0) {
      throw new RolloutTargetInvalid('target_empty', 'the target names no active device');
    }
    const busy = await this.store.busyDevices(firmware.component, targets);
    if (busy.length > 0) throw new RolloutOverlaps(busy);

    const id = this.random.uuid();
    const now = this.clock.now();
    const plan: RolloutPlan = {
      waves: input.waves,
      soakMs: input.soakSeconds * 1000,
      abortFailureRate: input.abortFailureRate,
      minDevices: input.minDevices,
      offerTimeoutMs: (input.offerTimeoutSeconds ?? 0) * 1000 || this.config.ota.offerTimeoutMs,
      updateTimeoutMs: (input.updateTimeoutSeconds ?? 0) * 1000 || this.config.ota.updateTimeoutMs,
    };
    const ordered = orderTargets(id, targets);
    const ends = waveEnds(plan.waves, ordered.length);
    const rollout: RolloutRecord = {
      ...initialState(plan),
      id,
      firmwareId: firmware.id,
      component: firmware.component,
      version: firmware.version,
      target: input.target,
      plan,
      rollbackTarget: input.rollback ? firmware.version : null,
      createdBy: caller.tokenId,
      createdAt: now,
      updatedAt: now,
      revision: 0,
    };
    await this.store.insertRollout(
      rollout,
      ordered.map((deviceId, position) => ({ deviceId, position, wave: waveOf(ends, position) })),
    );
    this.log.info(
      {
        rolloutId: id,
        firmwareId: firmware.id,
        component: firmware.component,
        version: firmware.version,
        devices: ordered.length,
        waves: plan.waves,
        by: caller.tokenId,
      },
      'rollout created',
    );
    // The first wave is offered before the answer, so it shows what was started.
    await this.runner
      .advance(id)
      .catch((err: unknown) =>
        this.log.error({ err, rolloutId: id }, 'first rollout evaluation failed'),
      );
    return this.detail(id, {});
  }

  async list(query: ListRolloutsQuery) {
    const page = await this.store.listRollouts({
      limit: query.limit,
      ...(query.status ? { status: query.status } : {}),
      ...(query.after ? { after: query.after } : {}),
    });
    return { items: page.items.map(rolloutListItem), next: page.next };
  }

  async detail(id: string, query: RolloutQuery) {
    const rollout = await this.store.getRollout(id);
    if (!rollout) throw new NotFound('rollout', id);
    const devices = await this.store.listRolloutDevices(id);
    const states = query.state ? new Set(query.state) : undefined;
    return {
      ...rolloutProgressView(rollout, devices),
      devices: devices.filter((d) => !states || states.has(d.state)).map(rolloutDeviceView),
    };
  }

  async control(id: string, command: ControlCommand, caller: Principal) {
    for (;;) {
      const rollout = await this.store.getRollout(id);
      if (!rollout) throw new NotFound('rollout', id);
      const result = control(rollout, command, this.clock.now(), caller.name);
      if (!result.ok) throw new RolloutFinished(id, rollout.status);
      if (!result.changed) break;
      const updated = await this.store.updateRollout(id, rollout.revision, {
        status: result.state.status,
        currentWave: result.state.currentWave,
        waves: result.state.waves,
        reason: result.state.reason,
        finishedAt: result.state.finishedAt,
        updatedAt: this.clock.now(),
      });
      // Changed meanwhile (a wave advanced): decide again on what is there now.
      if (!updated) continue;
      this.log.info({ rolloutId: id, command, by: caller.tokenId }, `rollout ${command}d`);
      this.progress.changed(id);
      if (command === 'resume') this.runner.nudge(id);
      break;
    }
    return this.detail(id, {});
  }

  /** Records a device's `ota.progress` or `ota.result` (PROTOCOL.md §7). */
  private async report(deviceId: string, event: OtaEvent): Promise<void> {
    for (let attempt = 0; attempt < REPORT_ATTEMPTS; attempt++) {
      const row = await this.store.getRolloutDevice(event.rolloutId, deviceId);
      if (!row) {
        this.ignored.inc({ reason: 'not_targeted' });
        this.log.debug({ deviceId, rolloutId: event.rolloutId }, 'OTA report for no rollout of it');
        return;
      }
      const rollout = await this.store.getRollout(event.rolloutId);
      if (rollout?.component !== event.component) {
        this.ignored.inc({ reason: 'component' });
        return;
      }
      const result = event.type === 'ota.result' ? event : undefined;
      const next = applyReport(row, {
        state: event.state,
        reason: result?.reason,
        detail: event.type === 'ota.progress' ? event.detail : undefined,
      });
      if (!next) {
        this.ignored.inc({ reason: 'finished' });
        return;
      }
      const updated = await this.store.updateRolloutDevice(
        event.rolloutId,
        deviceId,
        row.revision,
        {
          state: next.state,
          reason: next.reason,
          detail:
            event.type === 'ota.progress' ? (event.detail ?? null) : (result?.reason ?? row.detail),
          version: result?.version ?? row.version,
          updatedAt: this.clock.now(),
        },
      );
      if (!updated) continue;
      this.progress.device(updated);
      if (isTerminal(updated.state)) {
        this.results.inc({ state: updated.state });
        if (updated.state !== 'succeeded') {
          this.log.info(
            { deviceId, rolloutId: event.rolloutId, state: updated.state, reason: updated.reason },
            'device update failed',
          );
        }
        this.runner.nudge(event.rolloutId);
      }
      return;
    }
  }

  /** The devices a target names, each once; unknown devices or gateways are refused. */
  private async resolve(target: RolloutTarget): Promise<string[]> {
    const ids = new Set<string>();
    const max = this.config.ota.maxTargets;
    const add = (device: DeviceRecord) => {
      if (!targetable(device)) return;
      ids.add(device.id);
      if (ids.size > max) {
        throw new RolloutTargetInvalid(
          'target_too_large',
          `the target names more than ${max} devices (INGEST_OTA_MAX_TARGETS)`,
          { max },
        );
      }
    };
    const unknown: string[] = [];
    for (const id of target.devices ?? []) {
      const device = await this.registry.getDevice(id);
      if (device && targetable(device)) add(device);
      else unknown.push(id);
    }
    for (const gateway of target.gateways ?? []) {
      const device = await this.registry.getDevice(gateway);
      if (device?.kind !== 'gateway') unknown.push(gateway);
      else await this.each({ gateway, limit: 500 }, add);
    }
    if (unknown.length > 0) {
      throw new RolloutTargetInvalid(
        'target_unknown',
        `not enrolled devices or gateways: ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ` and ${unknown.length - 10} more` : ''}`,
        { ids: unknown.slice(0, 100) },
      );
    }
    if (target.tags && Object.keys(target.tags).length > 0) {
      await this.each({ tags: target.tags, limit: 500 }, add);
    }
    return [...ids];
  }

  private async each(filter: DeviceFilter, visit: (d: DeviceRecord) => void): Promise<void> {
    let after: string | undefined;
    do {
      const page = await this.registry.listDevices({ ...filter, ...(after ? { after } : {}) });
      for (const d of page.items) visit(d);
      after = page.next ?? undefined;
    } while (after);
  }
}
