import { hostname } from 'node:os';
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { Broker } from '../broker/broker.js';
import { LEASE_NAMES, LEASES, type Lease, type Leases } from '../cluster/lease.js';
import type { IngestConfig } from '../config.js';
import { CLOCK, type Clock, CONFIG, LOGGER, METRICS } from '../injection.js';
import { KeyedQueue } from './keyed-queue.js';
import {
  OTA_STORE,
  type OtaStore,
  type RolloutDeviceRecord,
  type RolloutRecord,
} from './ota-store.js';
import { applyActions, evaluate, TIMEOUT_REASON } from './rollout.js';
import { RolloutProgress } from './rollout-progress.js';

/** Tries before a rollout evaluation that keeps losing races gives up until the next tick. */
const ATTEMPTS = 4;

/**
 * The one place rollouts advance: on a timer (`tick`) and when something may have changed
 * (`nudge`: a device finished, a rollout was created or resumed). It evaluates the pure
 * state machine (`rollout.ts`) on what the store holds and applies the actions: timeouts,
 * wave marks, abort or completion, then offers. Every write is conditional (revision checks,
 * `pending` → `offered` once), so running it twice, or on two replicas, offers no device
 * twice. Replicas sharing a database advance rollouts only while they hold the
 * `ota.rollouts` lease; a new holder reads everything from the store, so it resumes where the
 * old one stopped: pending devices of a started wave are offered, a soak is measured from the
 * stored wave marks. A holder that lost the lease mid-step can finish at most that step, and
 * its writes still go through the revision checks.
 */
@Injectable()
export class RolloutRunner implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly queue = new KeyedQueue();
  private readonly log: Logger;
  private readonly offers: Counter;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private readonly offs: (() => void)[] = [];
  private readonly work = new Set<Promise<void>>();
  private warnedBaseUrl = false;
  private readonly lease: Lease;

  constructor(
    @Inject(OTA_STORE) private readonly store: OtaStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(LOGGER) logger: Logger,
    @Inject(METRICS) metrics: Registry,
    private readonly broker: Broker,
    private readonly progress: RolloutProgress,
    private readonly adapterHost: HttpAdapterHost,
    @Inject(LEASES) leases: Leases,
  ) {
    this.log = logger.child({ module: 'rollouts' });
    this.lease = leases.lease(LEASE_NAMES.otaRollouts);
    this.offers = new Counter({
      name: 'outpost_ingest_ota_offers_total',
      help: 'ota.offer commands published (first offers and offers sent again on reconnect)',
      registers: [metrics],
    });
  }

  onApplicationBootstrap(): void {
    this.lease.start();
    const tick = () => {
      this.tick().catch((err: unknown) => this.log.error({ err }, 'rollout tick failed'));
    };
    // A new holder looks at every running rollout at once instead of a tick later.
    this.offs.push(this.lease.onChange((held) => held && tick()));
    this.timer = setInterval(tick, this.config.ota.tickMs);
    this.timer.unref();
    // A device that was offline when offered gets the offer when it listens again.
    this.offs.push(
      this.broker.onCommandsSubscribed(({ deviceId }) => this.track(this.resendOffers(deviceId))),
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const off of this.offs.splice(0)) off();
    await this.ticking;
    await Promise.allSettled([...this.work]);
    await this.queue.idle();
    await this.lease.stop();
  }

  /** Evaluates every running rollout once (at most one pass at a time), if the lease is ours. */
  tick(): Promise<void> {
    if (!this.lease.isHeld()) return Promise.resolve();
    this.ticking ??= this.tickAll().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  /** Evaluates one rollout soon, without waiting for the timer. */
  nudge(rolloutId: string): void {
    // Another replica holds the lease: its next tick sees the change in the store.
    if (!this.lease.isHeld()) return;
    this.track(this.advance(rolloutId));
  }

  /** Evaluates one rollout and applies what it decides; one evaluation per rollout at a time. */
  advance(rolloutId: string): Promise<void> {
    return this.queue.run(rolloutId, () => this.step(rolloutId));
  }

  private async tickAll(): Promise<void> {
    let after: string | undefined;
    do {
      const page = await this.store.listRollouts({
        status: ['running'],
        limit: 100,
        ...(after ? { after } : {}),
      });
      for (const rollout of page.items) {
        if (!this.lease.isHeld()) return;
        await this.advance(rollout.id).catch((err: unknown) =>
          this.log.error({ err, rolloutId: rollout.id }, 'rollout evaluation failed'),
        );
      }
      after = page.next ?? undefined;
    } while (after);
  }

  private async step(rolloutId: string): Promise<void> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (!this.lease.isHeld()) return;
      const rollout = await this.store.getRollout(rolloutId);
      if (rollout?.status !== 'running') return;
      const devices = await this.store.listRolloutDevices(rolloutId);
      const now = this.clock.now();
      const actions = evaluate(rollout.plan, rollout, devices, now);
      if (actions.length === 0) return;

      // Timeouts first: the abort and wave decisions counted them as failures.
      const timeout = actions.find((a) => a.type === 'timeout');
      if (timeout && !(await this.timeOut(devices, timeout.deviceIds, now))) continue;

      const next = applyActions(rollout, actions);
      const updated = await this.store.updateRollout(rolloutId, rollout.revision, {
        status: next.status,
        currentWave: next.currentWave,
        waves: next.waves,
        reason: next.reason,
        finishedAt: next.finishedAt,
        updatedAt: now,
      });
      // Paused, cancelled or advanced elsewhere meanwhile: look again.
      if (!updated) continue;
      this.logTransitions(rollout, actions);

      const offer = actions.find((a) => a.type === 'offer');
      if (offer) {
        const offered = new Set(await this.store.markOffered(rolloutId, offer.deviceIds, now));
        await this.sendOffers(updated, [...offered]);
        for (const d of devices) {
          if (offered.has(d.deviceId)) {
            this.progress.device({
              ...d,
              state: 'offered',
              offeredAt: now,
              updatedAt: now,
              revision: d.revision + 1,
            });
          }
        }
      }
      this.progress.changed(rolloutId);
      return;
    }
  }

  /** Fails the devices with `timeout`; false when one of them changed meanwhile. */
  private async timeOut(
    devices: readonly RolloutDeviceRecord[],
    deviceIds: readonly string[],
    now: number,
  ): Promise<boolean> {
    let all = true;
    for (const id of deviceIds) {
      const row = devices.find((d) => d.deviceId === id)!;
      const updated = await this.store.updateRolloutDevice(row.rolloutId, id, row.revision, {
        state: 'failed',
        reason: TIMEOUT_REASON,
        detail: `no report for ${Math.round((now - row.updatedAt) / 1000)} s while ${row.state}`,
        version: row.version,
        updatedAt: now,
      });
      if (updated) this.progress.device(updated);
      else all = false;
    }
    return all;
  }

  private logTransitions(rollout: RolloutRecord, actions: ReturnType<typeof evaluate>): void {
    for (const a of actions) {
      const base = { rolloutId: rollout.id, component: rollout.component };
      if (a.type === 'wave_started') this.log.info({ ...base, wave: a.wave }, 'wave started');
      else if (a.type === 'wave_completed') this.log.info({ ...base, wave: a.wave }, 'wave done');
      else if (a.type === 'abort') this.log.warn({ ...base, reason: a.reason }, 'rollout aborted');
      else if (a.type === 'complete') this.log.info(base, 'rollout completed');
      else if (a.type === 'timeout') {
        this.log.info({ ...base, devices: a.deviceIds.length }, 'devices timed out');
      }
    }
  }

  /** Publishes `ota.offer` (PROTOCOL.md §8) to each device; one failure stops no other. */
  private async sendOffers(rollout: RolloutRecord, deviceIds: readonly string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    const firmware = await this.store.getFirmware(rollout.firmwareId);
    if (!firmware) return;
    const url = `${this.baseUrl()}/api/v1/firmware/${encodeURIComponent(firmware.id)}/artifact`;
    for (const deviceId of deviceIds) {
      try {
        await this.broker.publishCommand(deviceId, {
          type: 'ota.offer',
          rolloutId: rollout.id,
          component: rollout.component,
          manifest: firmware.manifest,
          url,
          ...(rollout.rollbackTarget ? { rollbackTarget: rollout.rollbackTarget } : {}),
        });
        this.offers.inc();
      } catch (err) {
        this.log.warn({ err, rolloutId: rollout.id, deviceId }, 'could not publish ota.offer');
      }
    }
  }

  private async resendOffers(deviceId: string): Promise<void> {
    for (const row of await this.store.offersAwaiting(deviceId)) {
      const rollout = await this.store.getRollout(row.rolloutId);
      if (rollout?.status === 'running') await this.sendOffers(rollout, [deviceId]);
    }
  }

  /** Where devices download artifacts: INGEST_PUBLIC_URL, else this server's own address. */
  private baseUrl(): string {
    if (this.config.http.publicUrl) return this.config.http.publicUrl.replace(/\/+$/, '');
    const address = this.adapterHost.httpAdapter?.getHttpServer()?.address() as
      | { port: number }
      | null
      | undefined;
    const host = this.config.http.host;
    const shown = host === '0.0.0.0' || host === '::' ? hostname() : host;
    const url = `http://${shown.includes(':') ? `[${shown}]` : shown}:${address?.port ?? this.config.http.port}`;
    if (!this.warnedBaseUrl) {
      this.warnedBaseUrl = true;
      this.log.warn({ url }, 'INGEST_PUBLIC_URL is not set: offers name artifacts under this URL');
    }
    return url;
  }

  private track(work: Promise<void>): void {
    const p = work.catch((err: unknown) => this.log.warn({ err }, 'rollout work failed'));
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }
}
