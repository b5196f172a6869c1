import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { LEASE_NAMES, type Lease, type Leases } from '../cluster/lease.js';
import type { Clock } from '../injection.js';
import { DurableOutbox } from './durable-outbox.js';
import { OutboxWriter } from './outbox-writer.js';
import type { TelemetryStore } from './telemetry-store.js';

/**
 * `<replica id>.db`: the outbox files of the replicas (config.ts REPLICA_ID), and
 * `<replica id>.single.db`, the outbox a replica had before it joined a cluster.
 */
const OUTBOX_FILE = /^([A-Za-z0-9._-]{1,80})\.db$/;
/** The owner part of `<replica id>.single.db`: an outbox no running replica wrote. */
const SINGLE_SUFFIX = '.single';
/** Longest pause between two drain steps while the store backs off. */
const MAX_WAIT_MS = 1_000;

export interface OutboxAdoptionOptions {
  /** The shared directory of every replica's outbox file. */
  dir: string;
  /** This replica: its own file is never adopted. */
  replicaId: string;
  leases: Leases;
  store: TelemetryStore;
  /** An owner's lease must have expired this long ago before its file is adopted. */
  adoptAfterMs: number;
  /** How often the directory is scanned. */
  scanMs: number;
  clock: Clock;
  random: () => number;
  logger: Logger;
  metrics?: Registry;
  /**
   * Called with a replica's id once it is found dead (its lease taken, its file there, empty
   * or not), before its file is drained: its devices' sessions died with it.
   */
  onReplicaLost?: (replicaId: string) => Promise<void>;
}

export type DrainOutcome =
  /** Every batch written; the file is gone (or kept aside for its quarantined batches). */
  | 'drained'
  /** Stopped, or the lease was lost: the file stays for whoever holds the lease next. */
  | 'interrupted';

/**
 * Survivor drain: a replica that died for good leaves its outbox file, full of batches the
 * devices were told are stored. Every replica looks in the shared directory for files whose
 * owner's lease has expired for longer than the grace period, takes that lease (so two
 * survivors never drain one file, and the owner, should it come back, waits), writes every
 * batch through its own telemetry store, then removes the file and releases the lease.
 *
 * Exactly once in the store: a batch is removed from the file only after the store took it,
 * and the lease keeps anyone else off the file; a crash between the two writes the batch
 * again, which the store absorbs (a point is keyed by its time). The seq ranges the dead
 * replica remembered for dedup go with its file: a device that replays an old batch to a
 * survivor gets it accepted and written again, equally harmless.
 *
 * The writer's store metrics are registered once per process by the pipeline; adopted
 * points are counted here, apart, so nothing is counted twice.
 */
export class OutboxAdoption {
  private readonly options: OutboxAdoptionOptions;
  private readonly log: Logger;
  private readonly adoptedFiles: Counter | undefined;
  private readonly adoptedPoints: Counter | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<string[]> | undefined;
  private stopping = false;

  constructor(options: OutboxAdoptionOptions) {
    this.options = options;
    this.log = options.logger.child({ module: 'outbox-adoption' });
    if (options.metrics) {
      this.adoptedFiles = new Counter({
        name: 'outpost_ingest_outbox_adopted_files_total',
        help: 'Outbox files of dead replicas drained by this one',
        registers: [options.metrics],
      });
      this.adoptedPoints = new Counter({
        name: 'outpost_ingest_outbox_adopted_points_total',
        help: 'Points written from the outbox files of dead replicas',
        registers: [options.metrics],
      });
    }
  }

  start(): void {
    if (this.timer) return;
    this.stopping = false;
    this.timer = setInterval(() => {
      void this.scan();
    }, this.options.scanMs);
    this.timer.unref();
  }

  /** Stops scanning; a drain in progress stops after its current write and keeps the file. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.scanning;
  }

  /** One pass over the directory (at most one at a time); the replica ids adopted. */
  scan(): Promise<string[]> {
    this.scanning ??= this.scanDir()
      .catch((err: unknown) => {
        this.log.error({ err }, 'outbox adoption scan failed');
        return [];
      })
      .finally(() => {
        this.scanning = undefined;
      });
    return this.scanning;
  }

  private async scanDir(): Promise<string[]> {
    const adopted: string[] = [];
    if (!existsSync(this.options.dir)) return adopted;
    for (const name of readdirSync(this.options.dir).sort()) {
      if (this.stopping) break;
      const owner = OUTBOX_FILE.exec(name)?.[1];
      if (owner === undefined || owner === this.options.replicaId) continue;
      const lease = this.options.leases.lease(LEASE_NAMES.outbox(owner), {
        takeOverAfterMs: this.options.adoptAfterMs,
      });
      if (!(await lease.tryAcquire())) {
        await lease.stop();
        continue;
      }
      lease.start();
      this.log.warn({ owner }, 'adopting the outbox of a replica whose lease expired');
      try {
        // The file may have been drained by another survivor just before we got the lease;
        // that survivor reported the replica lost.
        const path = join(this.options.dir, name);
        if (!existsSync(path)) continue;
        await this.replicaLost(owner);
        if ((await this.drainFile(path, lease)) === 'drained') adopted.push(owner);
      } finally {
        await lease.stop();
      }
    }
    return adopted;
  }

  /**
   * Once per dead replica: its file goes once drained, and with it the reason to look again.
   * An interrupted drain leaves the file to the next adopter, which reports the replica
   * again and finds nothing left to change. A failure is logged, not retried: draining the
   * batches comes first.
   */
  private async replicaLost(owner: string): Promise<void> {
    const replica = outboxReplica(owner);
    if (replica === null || !this.options.onReplicaLost) return;
    try {
      await this.options.onReplicaLost(replica);
    } catch (err) {
      this.log.error({ err, replica }, 'could not record the devices of a dead replica offline');
    }
  }

  /**
   * Writes every batch of the outbox file at `path` to the store, then removes the file.
   * With a lease, stops as soon as it is lost. Also used for a file this replica owns
   * without a lease (the single-process outbox left from before cluster mode).
   */
  async drainFile(path: string, lease?: Lease): Promise<DrainOutcome> {
    const { clock, random, store, logger } = this.options;
    const outbox = new DurableOutbox({ path, clock, maxCachedPoints: 0 });
    // One write at a time, and a short backoff cap: the file waits for nothing else.
    const writer = new OutboxWriter({
      outbox,
      store,
      clock,
      random,
      logger,
      maxWritesInFlight: 1,
      maxBackoffMs: 5_000,
    });
    const before = outbox.stats();
    let points = 0;
    let drained = false;
    try {
      while (!this.stopping && (lease === undefined || lease.isHeld())) {
        const step = await writer.drainOnce();
        if (step.outcome === 'idle') {
          drained = true;
          break;
        }
        if (step.outcome === 'written' || step.outcome === 'failed') points += step.points;
        if (step.outcome === 'waiting' || step.outcome === 'failed') {
          await sleep(Math.min(Math.max(step.retryInMs, 10), MAX_WAIT_MS));
        }
      }
    } finally {
      this.adoptedPoints?.inc(points);
      await outbox.close();
    }
    const file = basename(path);
    if (!drained) {
      this.log.warn({ file, points }, 'outbox drain interrupted; the file stays');
      return 'interrupted';
    }
    const after = outbox.stats();
    if (after.quarantinedBatches > 0) {
      // Refused batches are the operator's to look at: keep them, out of the scan's way.
      const aside = `${path}.quarantine-${clock.now()}`;
      renameSync(path, aside);
      removeSidecars(path);
      this.log.warn(
        { file, quarantinedBatches: after.quarantinedBatches, keptAs: basename(aside) },
        'drained an outbox; its quarantined batches are kept aside',
      );
    } else {
      rmSync(path, { force: true });
      removeSidecars(path);
    }
    this.adoptedFiles?.inc();
    this.log.info(
      { file, batches: before.pendingBatches, points },
      'outbox of another replica drained and removed',
    );
    return 'drained';
  }
}

/**
 * The replica whose outbox file has this owner part (`<owner>.db`); null for the outbox a
 * replica left from running alone, which no session of the cluster is tied to.
 */
export function outboxReplica(owner: string): string | null {
  return owner.endsWith(SINGLE_SUFFIX) ? null : owner;
}

/** `-wal` and `-shm` are empty after a clean close; gone with their database. */
function removeSidecars(path: string): void {
  rmSync(`${path}-wal`, { force: true });
  rmSync(`${path}-shm`, { force: true });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
