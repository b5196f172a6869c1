import { Inject, Injectable } from '@nestjs/common';
import { verifyBatch } from '@outpost/signing/batch';
import { isSigningError } from '@outpost/signing/errors';
import { Counter, type Registry } from 'prom-client';
import type { DeviceSession } from '../broker/broker-auth.js';
import type { IngestConfig } from '../config.js';
import { CLOCK, type Clock, CONFIG, METRICS, REGISTRY_STORE } from '../injection.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { LiveEvents } from '../stream/live-events.js';
import { decodeBatch, foreignDevices, TelemetryRejected, toPoints } from './normalize-batch.js';
import type { TelemetryPoint } from './telemetry-store.js';

/** The durable outbox as the pipeline sees it: accepted means on disk. */
export interface AcceptingOutbox {
  accept(batch: {
    publisher: string;
    boot?: string;
    seq?: [number, number];
    points: TelemetryPoint[];
  }): Promise<'accepted' | 'duplicate'>;
}
export const TELEMETRY_OUTBOX = Symbol('TELEMETRY_OUTBOX');

export interface AcceptResult {
  outcome: 'accepted' | 'duplicate';
  readings: number;
  boot?: string;
  seq?: [number, number];
}

/** How long a gateway's children and a child's tags are trusted before re-reading them. */
const REGISTRY_CACHE_MS = 5_000;
const MAX_TAG_CACHE = 100_000;
const NO_TAGS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The telemetry pipeline (PROTOCOL.md §5, §9): verify → validate → resolve → check children
 * → enrich with tags → dedup + durably accept. Shared by MQTT and HTTP ingest.
 */
@Injectable()
export class TelemetryService {
  private readonly readingsTotal: Counter;
  private readonly batchesTotal: Counter<'outcome'>;
  private readonly rejectedTotal: Counter<'reason'>;
  private readonly childCache = new Map<
    string,
    { tags: Readonly<Record<string, string>>; revoked: boolean; at: number }
  >();

  constructor(
    @Inject(TELEMETRY_OUTBOX) private readonly outbox: AcceptingOutbox,
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(METRICS) metrics: Registry,
    private readonly live: LiveEvents,
  ) {
    this.readingsTotal = new Counter({
      name: 'outpost_ingest_readings_total',
      help: 'Readings durably accepted',
      registers: [metrics],
    });
    this.batchesTotal = new Counter({
      name: 'outpost_ingest_batches_total',
      help: 'Telemetry batches by outcome',
      labelNames: ['outcome'],
      registers: [metrics],
    });
    this.rejectedTotal = new Counter({
      name: 'outpost_ingest_rejected_total',
      help: 'Telemetry messages refused, by reason (PROTOCOL.md §9)',
      labelNames: ['reason'],
      registers: [metrics],
    });
  }

  /** Counts a refusal decided outside the pipeline (e.g. the broker's size guard). */
  countRejected(reason: string): void {
    this.rejectedTotal.inc({ reason });
    this.batchesTotal.inc({ outcome: 'rejected' });
  }

  /**
   * Accepts one telemetry message from an authenticated device. Resolves once the batch is
   * on disk (or known as a duplicate); throws `TelemetryRejected` for a refusal for good and
   * an `unavailable` AppError when the service cannot accept now (the sender must retry).
   */
  async accept(session: DeviceSession, payload: Buffer): Promise<AcceptResult> {
    try {
      return await this.run(session, payload);
    } catch (err) {
      if (err instanceof TelemetryRejected) this.countRejected(err.reason);
      throw err;
    }
  }

  private async run(session: DeviceSession, payload: Buffer): Promise<AcceptResult> {
    if (payload.length > this.config.limits.maxMessageBytes) {
      throw new TelemetryRejected(
        'too_large',
        `message of ${payload.length} bytes is over the limit`,
      );
    }
    const first = payload[0];
    // A bare SenML pack is a JSON array; anything else must be a compact JWS.
    const signed = first !== 0x5b && first !== 0x20 && first !== 0x0a;
    let json: unknown;
    if (signed) {
      try {
        json = (
          await verifyBatch(payload, {
            keys: session.keys,
            maxBytes: this.config.limits.maxMessageBytes,
          })
        ).payload;
      } catch (err) {
        if (!isSigningError(err)) throw err;
        const reason =
          err.code === 'token_too_large'
            ? 'too_large'
            : err.kind === 'invalid'
              ? 'schema'
              : 'bad_signature';
        throw new TelemetryRejected(reason, `batch refused: ${err.message}`, {}, { cause: err });
      }
    } else {
      // PROTOCOL.md §5: gateways always sign; others only if their policy allows.
      if (session.kind === 'gateway' || session.payloadSigning !== 'optional') {
        throw new TelemetryRejected(
          'policy',
          'this device must sign its telemetry (payloadSigning: required)',
        );
      }
      try {
        json = JSON.parse(payload.toString('utf8'));
      } catch {
        throw new TelemetryRejected('schema', 'the payload is not valid JSON');
      }
    }
    const now = this.clock.now();
    const decoded = decodeBatch(json, signed, session, now / 1000);
    const batchRef = { boot: decoded.boot, seq: decoded.seq };
    let foreign = foreignDevices(decoded.readings, session);
    if (
      foreign.length > 0 &&
      session.kind === 'gateway' &&
      now - session.childrenLoadedAt > REGISTRY_CACHE_MS / 5
    ) {
      session.children = new Set(await this.store.childrenOf(session.deviceId));
      session.childrenLoadedAt = now;
      foreign = foreignDevices(decoded.readings, session);
    }
    if (foreign.length > 0) {
      throw new TelemetryRejected(
        'not_child',
        `not a child of ${session.deviceId}: ${foreign.slice(0, 5).join(', ')}`,
        batchRef,
      );
    }
    const tags = new Map<string, Readonly<Record<string, string>>>([
      [session.deviceId, session.tags],
    ]);
    // Readings of one device come in runs: each device is looked at once per run.
    let previous: string | undefined;
    for (const { deviceId: child } of decoded.readings) {
      if (child === previous) continue;
      previous = child;
      if (tags.has(child)) continue;
      const info = await this.childInfo(child, now);
      if (info.revoked)
        throw new TelemetryRejected('revoked', `device ${child} is revoked`, batchRef);
      tags.set(child, info.tags);
    }
    const points = toPoints(decoded.readings, (id) => tags.get(id) ?? NO_TAGS);
    const outcome = await this.outbox.accept({
      publisher: session.deviceId,
      ...(decoded.boot ? { boot: decoded.boot } : {}),
      ...(decoded.seq ? { seq: decoded.seq } : {}),
      points,
    });
    this.batchesTotal.inc({ outcome });
    if (outcome === 'accepted') {
      this.readingsTotal.inc(points.length);
      if (points.length > 0) this.live.emit('readings', { publisher: session.deviceId, points });
    }
    return { outcome, readings: points.length, ...batchRef };
  }

  private async childInfo(deviceId: string, now: number) {
    const cached = this.childCache.get(deviceId);
    if (cached && now - cached.at < REGISTRY_CACHE_MS) return cached;
    const device = await this.store.getDevice(deviceId);
    const info = { tags: device?.tags ?? {}, revoked: device?.status === 'revoked', at: now };
    if (this.childCache.size >= MAX_TAG_CACHE) this.childCache.clear();
    this.childCache.set(deviceId, info);
    return info;
  }
}
