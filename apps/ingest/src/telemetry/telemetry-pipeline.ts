import { join } from 'node:path';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { IngestConfig } from '../config.js';
import { CLOCK, type Clock, CONFIG, LOGGER, METRICS, RANDOM, type Random } from '../injection.js';
import { DurableOutbox } from './durable-outbox.js';
import { InfluxTelemetryStore } from './influx-telemetry-store.js';
import { OutboxWriter } from './outbox-writer.js';
import { SqliteTelemetryStore } from './sqlite-telemetry-store.js';
import type { TelemetryStore } from './telemetry-store.js';

export function openTelemetryStore(config: IngestConfig): TelemetryStore {
  const influx = config.influx;
  if (!influx) return new SqliteTelemetryStore(join(config.dataDir, 'telemetry.db'));
  return new InfluxTelemetryStore({
    url: influx.url,
    api: influx.api,
    ...(influx.token ? { token: influx.token } : {}),
    ...(influx.org ? { org: influx.org } : {}),
    ...(influx.bucket ? { bucket: influx.bucket } : {}),
    ...(influx.database ? { database: influx.database } : {}),
  });
}

/**
 * The durable write path (PROTOCOL.md §9): accepted batches go to the outbox on disk; the
 * writer drains them to the telemetry store with retries, backoff and a quarantine.
 */
@Injectable()
export class TelemetryPipeline implements OnModuleInit, OnApplicationShutdown {
  readonly store: TelemetryStore;
  readonly outbox: DurableOutbox;
  private readonly writer: OutboxWriter;

  constructor(
    @Inject(CONFIG) config: IngestConfig,
    @Inject(CLOCK) clock: Clock,
    @Inject(RANDOM) random: Random,
    @Inject(LOGGER) logger: Logger,
    @Inject(METRICS) metrics: Registry,
  ) {
    this.store = openTelemetryStore(config);
    this.outbox = new DurableOutbox({
      path: join(config.dataDir, 'telemetry-outbox.db'),
      clock,
      groupCommitMs: config.outbox.groupCommitMs,
      maxBacklogPoints: config.outbox.maxPoints,
    });
    this.writer = new OutboxWriter({
      outbox: this.outbox,
      store: this.store,
      maxWritesInFlight: config.outbox.writesInFlight,
      clock,
      random: () => random.unit(),
      logger: logger.child({ module: 'outbox-writer' }),
      metrics,
    });
  }

  onModuleInit(): void {
    this.writer.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.writer.stop();
    await this.outbox.close();
    await this.store.close();
  }
}
