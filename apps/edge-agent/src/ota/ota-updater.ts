import { join } from 'node:path';
import type { CommandOf } from '@outpost/protocol/commands';
import { type Manifest, manifestSchema, type OtaState } from '@outpost/protocol/ota';
import { verifyManifest } from '@outpost/signing/manifest';
import type { Logger } from 'pino';
import {
  type DownloadDeps,
  downloadArtifact,
  promoteStaged,
  removeStaged,
} from './artifact-download.js';
import type { Installer, InstallOutcome, InstallStep } from './installer.js';
import {
  canMove,
  decideOffer,
  isTerminal,
  manifestRefusal,
  relateOffer,
  resumeAction,
  sameOrigin,
  stagingNames,
} from './offer-checks.js';
import type { OtaRecord, OtaStateStore } from './ota-state-store.js';
import type { ReleaseKeyStore } from './release-key-store.js';

/**
 * The agent's side of PROTOCOL.md §8 OTA, for the gateway and its children: takes verified
 * `ota.offer` commands, checks the manifest against the trusted release keys and the
 * device, downloads and checks the image, hands it to the installer that serves the device
 * and component, and reports every step as `ota.progress` and the end as `ota.result`
 * (PROTOCOL.md §7). Each step is written to the state file before it is taken, so after a
 * crash the next start carries on from there (offer-checks.ts `resumeAction`); a result is
 * reported until the ingest acknowledged it.
 */
export const STAGING_DIR = 'ota-staging';

export interface OtaUpdaterOptions {
  dataDir: string;
  /** The ingest's HTTP base URL: artifacts are fetched only from its origin. */
  server: string;
  installers: readonly Installer[];
  releaseKeys: ReleaseKeyStore;
  state: OtaStateStore;
  /** Publishes an event on `v1/devices/{deviceId}/events` (QoS 1); resolves on PUBACK. */
  publish(deviceId: string, event: Record<string, unknown>): Promise<void>;
  download: Omit<DownloadDeps, 'progressEveryMs'>;
  /** Least time between two `downloading` progress reports. */
  progressEveryMs: number;
  /** Epoch ms. */
  now: () => number;
  logger: Logger;
}

type Offer = CommandOf<'ota.offer'>;

class Stopped extends Error {}

export class OtaUpdater {
  readonly #o: OtaUpdaterOptions;
  readonly #abort = new AbortController();
  /** One update at a time per device and component; offers are taken in arrival order. */
  #intake: Promise<void> = Promise.resolve();
  readonly #work = new Set<Promise<void>>();
  readonly #log: Logger;
  /**
   * Staged images (by sha256) of the updates under way. A gateway offered the same firmware
   * for several children in one wave stages it once: one update downloads it while the
   * others wait, then find it complete and checked; it is removed when the last of them
   * ends. (Each downloading into the same `.part` file on its own truncated and renamed it
   * under the others: they failed `size_mismatch`, or lost the image before flashing.)
   */
  readonly #staged = new Map<string, { users: number; tail: Promise<void> }>();

  constructor(options: OtaUpdaterOptions) {
    this.#o = options;
    this.#log = options.logger;
  }

  get stagingDir(): string {
    return join(this.#o.dataDir, STAGING_DIR);
  }

  /** Reads the state and the trusted keys, then carries on with unfinished updates. */
  async start(): Promise<void> {
    const keys = await this.#o.releaseKeys.load();
    if (keys.damaged) this.#log.error('release-keys.json is damaged: using the enrolled keys');
    const state = await this.#o.state.load();
    if (state.damaged) this.#log.error({ path: this.#o.state.path }, 'OTA state file is damaged');
    for (const record of this.#o.state.all()) {
      const action = resumeAction(record);
      if (action.kind === 'restart' || action.kind === 'install') {
        this.#log.info(
          { deviceId: record.deviceId, rolloutId: record.rolloutId, state: record.state },
          'resuming an update',
        );
        this.#track(this.#update(record, action.kind === 'install' ? 'install' : 'check'));
      }
    }
  }

  /** The session is up: report results that were not acknowledged yet. */
  sessionUp(): void {
    for (const record of this.#o.state.all()) {
      if (isTerminal(record.state) && !record.reported) this.#track(this.#report(record));
    }
  }

  /** PROTOCOL.md §8 `keys.release`: the new set replaces the trusted keys. */
  async keysRelease(command: CommandOf<'keys.release'>): Promise<void> {
    const { trusted, unpinned } = await this.#o.releaseKeys.replace(command.keys, this.#o.now());
    this.#log.info({ keys: trusted }, 'trusted release keys replaced');
    if (unpinned > 0) {
      this.#log.warn({ unpinned }, 'keys.release named keys outside ota.releaseKeyPins: ignored');
    }
  }

  /** PROTOCOL.md §8 `ota.offer` (its command signature already checked). */
  offer(command: Offer): Promise<void> {
    const taken = this.#intake.then(() => this.#take(command));
    this.#intake = taken.catch(() => undefined);
    return taken;
  }

  async #take(offer: Offer): Promise<void> {
    const { state } = this.#o;
    const log = this.#log.child({ deviceId: offer.device, rolloutId: offer.rolloutId });
    const existing = state.get(offer.device, offer.component);
    const relation = relateOffer(existing, offer.rolloutId);
    if (relation === 'duplicate') {
      log.debug({ state: existing!.state }, 'offer seen before');
      // The ingest may have lost the result: say it again.
      if (existing && isTerminal(existing.state)) this.#track(this.#report(existing));
      return;
    }
    if (relation === 'busy') {
      log.warn({ busyWith: existing!.rolloutId }, 'offer refused: another update is running');
      this.#track(
        this.#publish(offer.device, {
          type: 'ota.result',
          rolloutId: offer.rolloutId,
          component: offer.component,
          state: 'failed',
          reason: 'busy',
        }).catch(() => undefined),
      );
      return;
    }
    const record: OtaRecord = {
      deviceId: offer.device,
      component: offer.component,
      rolloutId: offer.rolloutId,
      state: 'offered',
      manifest: offer.manifest,
      url: offer.url,
      ...(offer.rollbackTarget === undefined ? {} : { rollbackTarget: offer.rollbackTarget }),
      received: 0,
      reported: false,
      updatedAt: this.#o.now(),
    };
    await state.put(record);
    log.info({ component: offer.component }, 'firmware offered');
    this.#progress(record, 'offered');
    this.#track(this.#update(record, 'check'));
  }

  /**
   * One update from where `record` stands: `check` verifies, decides and downloads first;
   * `install` goes back to the installer (it was at work when the agent stopped).
   */
  async #update(start: OtaRecord, from: 'check' | 'install'): Promise<void> {
    const signal = this.#abort.signal;
    let record = start;
    const log = this.#log.child({ deviceId: record.deviceId, rolloutId: record.rolloutId });
    const move = async (state: OtaState, patch: Partial<OtaRecord> = {}, detail?: string) => {
      if (signal.aborted) throw new Stopped();
      if (state === record.state) {
        // Already there (the updater marked it, or a restart): only news is worth an event.
        if (detail !== undefined) this.#progress(record, state, detail);
        return;
      }
      if (!canMove(record.state, state)) return;
      record = { ...record, ...patch, state, updatedAt: this.#o.now() };
      await this.#o.state.put(record);
      this.#progress(record, state, detail);
    };
    /** The steps the installer reported, each written before the result. */
    const steps: Promise<void>[] = [];
    /** The staged image this update holds (see `#staged`), once its manifest is known. */
    let held: string | undefined;
    const end = (state: InstallOutcome['state'], reason?: string, version?: string) =>
      this.#finish(record, state, reason, version, held);
    try {
      const installer = this.#o.installers.find((i) =>
        i.handles(record.deviceId, record.component),
      );
      if (installer === undefined) return await end('failed', 'component_unsupported');

      // What runs now: the `version` of a refusal's result.
      const installed =
        from === 'check' ? await installer.installed(record.deviceId, record.component) : undefined;
      let manifest: Manifest;
      try {
        manifest = (
          await verifyManifest(record.manifest, {
            trustedKeys: this.#o.releaseKeys.current(),
            schema: manifestSchema,
          })
        ).payload;
      } catch (err) {
        const reason = manifestRefusal(err);
        const checked = from === 'install' ? manifestPayload(record.manifest) : undefined;
        if (checked === undefined) {
          log.warn({ reason, err: (err as Error).message }, 'manifest refused');
          return await end('failed', reason, installed?.version);
        }
        // It verified before the install began (the state file says so); a key set replaced
        // since must not strand a version half installed or on trial.
        log.warn({ reason }, 'manifest no longer verifies: finishing the install it began');
        manifest = checked;
      }
      const staged = join(this.stagingDir, stagingNames(manifest.sha256).complete);
      this.#holdStaged(manifest.sha256);
      held = manifest.sha256;

      if (from === 'check') {
        const decision = decideOffer({
          offer: { component: record.component, rollbackTarget: record.rollbackTarget },
          manifest,
          installed,
        });
        if (decision.kind === 'current') {
          log.info({ version: manifest.version }, 'already runs the offered version');
          return await end('succeeded', undefined, manifest.version);
        }
        if (decision.kind === 'refuse') {
          log.warn({ reason: decision.reason, detail: decision.detail }, 'offer refused');
          return await end('failed', decision.reason, installed?.version);
        }
        if (!sameOrigin(record.url, this.#o.server)) {
          log.warn({ server: this.#o.server }, 'offer names an artifact on another origin');
          return await end('failed', 'url_foreign_origin', installed?.version);
        }
        await move('downloading', { version: manifest.version, fromVersion: installed?.version });
        const failure = await this.#stagingTurn(manifest.sha256, async () => {
          const downloaded = await downloadArtifact(
            {
              url: record.url,
              stagingDir: this.stagingDir,
              size: manifest.size,
              sha256: manifest.sha256,
              signal,
              onProgress: (received) => {
                if (received >= manifest.size) return;
                record = { ...record, received, updatedAt: this.#o.now() };
                this.#track(this.#o.state.put(record).catch(() => undefined));
                this.#progress(record, 'downloading', `${received} of ${manifest.size} bytes`);
              },
            },
            { ...this.#o.download, progressEveryMs: this.#o.progressEveryMs },
          );
          if (!downloaded.ok) {
            log.warn({ reason: downloaded.reason, detail: downloaded.detail }, 'download failed');
            return downloaded.reason;
          }
          await move('verifying', { received: manifest.size });
          if (!downloaded.verified) {
            const promoted = await promoteStaged(this.stagingDir, manifest.size, manifest.sha256);
            if (!promoted.ok) {
              log.warn({ reason: promoted.reason }, 'downloaded image does not match its manifest');
              return promoted.reason;
            }
          }
          return undefined;
        });
        if (failure !== undefined) return await end('failed', failure, installed?.version);
        await move('installing');
      }

      const outcome = await installer.install({
        deviceId: record.deviceId,
        component: record.component,
        manifest,
        artifactPath: staged,
        signal,
        report: (step: InstallStep) => {
          const written = move(step.state, {}, step.detail).catch(() => undefined);
          steps.push(written);
          this.#track(written);
        },
      });
      await Promise.allSettled(steps);
      await end(outcome.state, 'reason' in outcome ? outcome.reason : undefined, outcome.version);
    } catch (err) {
      if (signal.aborted || err instanceof Stopped) return;
      log.error({ err }, 'update failed unexpectedly');
      await end('failed', 'internal_error').catch(() => undefined);
    }
  }

  async #finish(
    record: OtaRecord,
    state: InstallOutcome['state'],
    reason: string | undefined,
    version: string | undefined,
    held: string | undefined,
  ): Promise<void> {
    const { state: _previous, reason: _reason, ...rest } = record;
    const done: OtaRecord = {
      ...rest,
      state,
      ...(reason === undefined ? {} : { reason }),
      ...(version === undefined ? {} : { version }),
      reported: false,
      updatedAt: this.#o.now(),
    };
    await this.#o.state.put(done);
    this.#log.info(
      { deviceId: done.deviceId, rolloutId: done.rolloutId, state, reason, version },
      'update ended',
    );
    // The staged image goes with the last update that uses it; one refused before it held
    // the image leaves it to those under way.
    const sha = held ?? manifestSha(record.manifest);
    const last = held !== undefined ? this.#releaseStaged(held) : !this.#staged.has(sha ?? '');
    if (sha !== undefined && last) {
      await removeStaged(this.stagingDir, sha).catch(() => undefined);
    }
    await this.#report(done);
  }

  #holdStaged(sha256: string): void {
    const entry = this.#staged.get(sha256) ?? { users: 0, tail: Promise.resolve() };
    entry.users++;
    this.#staged.set(sha256, entry);
  }

  /** True when no other update holds the image any more. */
  #releaseStaged(sha256: string): boolean {
    const entry = this.#staged.get(sha256);
    if (entry === undefined) return true;
    entry.users--;
    if (entry.users > 0) return false;
    this.#staged.delete(sha256);
    return true;
  }

  /** Runs `work` on the staged image once the updates before it are done with theirs. */
  #stagingTurn<T>(sha256: string, work: () => Promise<T>): Promise<T> {
    const entry = this.#staged.get(sha256)!;
    const turn = entry.tail.then(work);
    entry.tail = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  /** Publishes the result; marks it reported once the ingest acknowledged it. */
  async #report(record: OtaRecord): Promise<void> {
    try {
      await this.#publish(record.deviceId, {
        type: 'ota.result',
        rolloutId: record.rolloutId,
        component: record.component,
        state: record.state,
        ...(record.version === undefined ? {} : { version: record.version }),
        ...(record.state === 'succeeded' ? {} : { reason: record.reason ?? 'unknown' }),
      });
    } catch {
      // Reported again when the session is up.
      return;
    }
    const now = this.#o.state.get(record.deviceId, record.component);
    if (now?.rolloutId === record.rolloutId && now.state === record.state && !now.reported) {
      await this.#o.state.put({ ...now, reported: true });
    }
  }

  #progress(record: OtaRecord, state: OtaState, detail?: string): void {
    this.#track(
      this.#publish(record.deviceId, {
        type: 'ota.progress',
        rolloutId: record.rolloutId,
        component: record.component,
        state,
        ...(detail === undefined ? {} : { detail: detail.slice(0, 200) }),
      }).catch(() => undefined),
    );
  }

  #publish(deviceId: string, body: Record<string, unknown>): Promise<void> {
    return this.#o.publish(deviceId, { v: 1, at: this.#o.now() / 1000, ...body });
  }

  #track(work: Promise<void>): void {
    const p = work.catch((err: unknown) => this.#log.warn({ err }, 'OTA work failed'));
    this.#work.add(p);
    void p.finally(() => this.#work.delete(p));
  }

  /** Stops downloads and trials; what was reached is on disk for the next start. */
  async stop(): Promise<void> {
    this.#abort.abort(new Stopped('stopping'));
    for (let i = 0; i < 5 && this.#work.size > 0; i++) await Promise.allSettled([...this.#work]);
  }
}

/**
 * A manifest JWS's payload read without verifying it: only for one that verified before
 * (an install under way) and for clean-up.
 */
function manifestPayload(jws: string): Manifest | undefined {
  try {
    const payload: unknown = JSON.parse(
      Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8'),
    );
    const parsed = manifestSchema.safeParse(payload);
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function manifestSha(jws: string): string | undefined {
  return manifestPayload(jws)?.sha256;
}
