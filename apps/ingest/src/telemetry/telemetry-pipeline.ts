import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { LostSessions } from '../broker/lost-sessions.js';
import { LEASES, type Lease, type Leases } from '../cluster/lease.js';
import { OUTBOX_LEASE } from '../cluster/lease-providers.js';
import type { IngestConfig } from '../config.js';
import { CLOCK, type Clock, CONFIG, LOGGER, METRICS, RANDOM, type Random } from '../injection.js';
import { DurableOutbox } from './durable-outbox.js';
import { InfluxTelemetryStore } from './influx-telemetry-store.js';
import { OutboxAdoption } from './outbox-adoption.js';
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

/** The single-process outbox file, and the one a replica leaves when it joins a cluster. */
const SINGLE_OUTBOX = 'telemetry-outbox.db';

/**
 * Where this replica's outbox lives: alone, `<data dir>/telemetry-outbox.db` as always; with
 * replicas sharing PostgreSQL, `<outbox dir>/<replica id>.db` in the directory they share.
 */
export function outboxPath(config: IngestConfig, shared: boolean): string {
  return shared
    ? join(config.outbox.dir, `${config.replicaId}.db`)
    : join(config.dataDir, SINGLE_OUTBOX);
}

/**
 * The durable write path (PROTOCOL.md §9): accepted batches go to the outbox on disk; the
 * writer drains them to the telemetry store with retries, backoff and a quarantine.
 *
 * With replicas sharing PostgreSQL, the outbox file is this replica's while it holds the
 * lease `outbox:<replica id>` (acquired before this is built). Losing it (the database
 * unreachable past the TTL) suspends accepting and draining, since a survivor may adopt the
 * file once the grace period passes; getting it back resumes both, unless the file was
 * adopted meanwhile, in which case the outbox stays suspended until a restart opens a new
 * one. Meanwhile this replica drains the files of replicas that died (outbox-adoption.ts)
 * and records their devices offline (lost-sessions.ts).
 */
@Injectable()
export class TelemetryPipeline implements OnModuleInit, OnApplicationShutdown {
  readonly store: TelemetryStore;
  readonly outbox: DurableOutbox;
  readonly adoption: OutboxAdoption | undefined;
  private readonly writer: OutboxWriter;
  private readonly log: Logger;
  private readonly path: string;
  private readonly inode: number;
  private offLease: (() => void) | undefined;
  private legacyDrain: Promise<unknown> | undefined;
  private legacy: string | undefined;
  /** The writer stopping after a lost lease: it restarts only once that is done. */
  private writerStopped: Promise<void> = Promise.resolve();

  constructor(
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) clock: Clock,
    @Inject(RANDOM) random: Random,
    @Inject(LOGGER) logger: Logger,
    @Inject(METRICS) metrics: Registry,
    @Inject(LEASES) leases: Leases,
    @Inject(OUTBOX_LEASE) private readonly lease: Lease,
    lostSessions?: LostSessions,
  ) {
    this.log = logger.child({ module: 'telemetry' });
    this.store = openTelemetryStore(config);
    this.path = outboxPath(config, leases.shared);
    if (leases.shared) this.legacy = this.handOverSingleOutbox();
    this.outbox = new DurableOutbox({
      path: this.path,
      clock,
      groupCommitMs: config.outbox.groupCommitMs,
      maxBacklogPoints: config.outbox.maxPoints,
    });
    this.inode = statSync(this.path).ino;
    this.writer = new OutboxWriter({
      outbox: this.outbox,
      store: this.store,
      maxWritesInFlight: config.outbox.writesInFlight,
      clock,
      random: () => random.unit(),
      logger: logger.child({ module: 'outbox-writer' }),
      metrics,
    });
    this.adoption = leases.shared
      ? new OutboxAdoption({
          dir: config.outbox.dir,
          replicaId: config.replicaId,
          leases,
          store: this.store,
          adoptAfterMs: config.outbox.adoptAfterMs,
          scanMs: config.outbox.adoptScanMs,
          clock,
          random: () => random.unit(),
          logger,
          metrics,
          ...(lostSessions
            ? { onReplicaLost: (replicaId: string) => lostSessions.replicaLost(replicaId) }
            : {}),
        })
      : undefined;
  }

  onModuleInit(): void {
    this.writer.start();
    this.offLease = this.lease.onChange((held) => this.ownershipChanged(held));
    if (!this.adoption) return;
    this.adoption.start();
    const legacy = this.legacy;
    if (legacy !== undefined) {
      this.log.info('draining the outbox left from running alone, in place');
      this.legacyDrain = this.adoption
        .drainFile(legacy)
        .catch((err: unknown) => this.log.error({ err }, 'could not drain the previous outbox'));
    }
  }

  /**
   * Joining a cluster with batches left in `<data dir>/telemetry-outbox.db`: the file moves
   * into the shared directory as `<replica id>.single.db`, an outbox no replica owns, which
   * the next adoption scan (of any replica) drains under its lease. Its WAL is folded into
   * it first (open and close), so one rename moves everything. Returns the path to drain in
   * place when the directories are on different file systems.
   */
  private handOverSingleOutbox(): string | undefined {
    const legacy = join(this.config.dataDir, SINGLE_OUTBOX);
    if (!existsSync(legacy)) return undefined;
    // Nothing accepted, nothing to sync: closed (WAL folded in) before `close` returns.
    void new DurableOutbox({ path: legacy }).close();
    const target = join(this.config.outbox.dir, `${this.config.replicaId}.single.db`);
    try {
      mkdirSync(this.config.outbox.dir, { recursive: true });
      renameSync(legacy, target);
      this.log.info({ file: target }, 'moved the outbox left from running alone for adoption');
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if ((err as NodeJS.ErrnoException).code === 'EXDEV') return legacy;
      throw err;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.offLease?.();
    await this.adoption?.stop();
    await this.legacyDrain;
    await this.writer.stop();
    await this.outbox.close();
    await this.store.close();
    // Released only once the file is closed: nobody may open it before.
    await this.lease.stop();
  }

  private ownershipChanged(held: boolean): void {
    if (!held) {
      this.log.error(
        "lost the lease on this replica's outbox: not accepting telemetry until it is back",
      );
      this.outbox.suspend('this replica lost the lease on its telemetry outbox');
      this.writerStopped = this.writer.stop();
      return;
    }
    const now = existsSync(this.path) ? statSync(this.path).ino : undefined;
    if (now !== this.inode) {
      this.log.error(
        "this replica's outbox was drained by another replica while the lease was lost; restart to accept telemetry again",
      );
      return;
    }
    this.log.info('outbox lease back: accepting telemetry again');
    this.outbox.resume();
    void this.writerStopped.then(() => {
      if (this.lease.isHeld()) this.writer.start();
    });
  }
}
