import { Inject, Injectable, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import type { Logger } from 'pino';
import type { IngestConfig } from '../config.js';
import { CONFIG, LOGGER, RANDOM, type Random } from '../injection.js';
import { LEASE_NAMES, LEASES, type Lease, type Leases } from './lease.js';
import { LocalLeases } from './local-lease.js';

/**
 * Leases on PostgreSQL when replicas share it, else the single process holds every lease.
 * The holder name is the replica id plus a per-run suffix: a restarted replica is a new
 * holder, so it never mistakes the lease of its crashed predecessor for its own.
 */
async function openLeases(config: IngestConfig, logger: Logger, random: Random): Promise<Leases> {
  if (!config.databaseUrl) return new LocalLeases(config.replicaId);
  const { PostgresLeases } = await import('./postgres-lease.js');
  const leases = new PostgresLeases({
    url: config.databaseUrl,
    holder: `${config.replicaId}/${random.token(6)}`,
    ttlMs: config.leaseTtlMs,
    logger: logger.child({ module: 'leases' }),
  });
  await leases.migrate();
  return leases;
}

/** This replica's lease on its own telemetry outbox file, held (see telemetry-pipeline.ts). */
export const OUTBOX_LEASE = Symbol('OUTBOX_LEASE');

/**
 * Waits until this replica owns its outbox: after a crash its previous run's lease must
 * expire first, and while a survivor drains the file (it adopted it) the survivor must
 * finish, remove the file and release the lease. Only then may this process open the file.
 */
async function ownOutbox(leases: Leases, config: IngestConfig, logger: Logger): Promise<Lease> {
  const lease = leases.lease(LEASE_NAMES.outbox(config.replicaId));
  if (!(await lease.tryAcquire())) {
    logger.warn(
      { module: 'leases', replicaId: config.replicaId },
      "waiting for the lease on this replica's outbox (a previous run or a survivor draining it holds it)",
    );
  }
  lease.start();
  await lease.acquired();
  return lease;
}

/** Releases what is still held after everything using a lease has stopped. */
@Injectable()
class LeasesLifecycle implements OnApplicationShutdown {
  constructor(@Inject(LEASES) private readonly leases: Leases) {}

  async onApplicationShutdown(): Promise<void> {
    await this.leases.close();
  }
}

export const LEASE_PROVIDERS: Provider[] = [
  { provide: LEASES, useFactory: openLeases, inject: [CONFIG, LOGGER, RANDOM] },
  LeasesLifecycle,
  { provide: OUTBOX_LEASE, useFactory: ownOutbox, inject: [LEASES, CONFIG, LOGGER] },
];
