import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { InstalledFirmware, Installer, InstallOutcome, InstallRequest } from './installer.js';
import { BundleInvalid, safeEntryPath, type UnpackLimits, unpackTarGz } from './tar-unpack.js';
import {
  clearMarker,
  currentDir,
  readMarker,
  switchCurrent,
  type TrialMarker,
  VERSIONS_DIR,
  versionDir,
  writeMarker,
} from './trial-marker.js';

/**
 * Installs a new version of the agent itself (component `agent` of the gateway): unpacks the
 * bundle into `<installRoot>/versions/<version>/`, switches `current` atomically, and
 * restarts into it. The new version runs on trial: it must reach the cloud and, if sources
 * are configured, hear from them within `trialWindowMs`; then it commits (the previous
 * version stays for one more update). Otherwise it switches back and restarts into the old
 * version, which reports `rolled_back`. A new version that cannot even start is switched
 * back by the launcher after `maxBoots` starts (see trial-marker.ts).
 *
 * `install` is re-entered after every restart with the same request (the updater keeps it in
 * its state file): what happens next is decided from the running version and trial.json.
 */
export const AGENT_COMPONENT = 'agent';

/** The exit code asking the launcher (or systemd's Restart=always) to start `current` again. */
export const RESTART_EXIT_CODE = 75;

/** Answers whether the running agent is healthy; undefined when it is, else what fails. */
export type HealthProbe = () => Promise<'cloud_unreachable' | 'sources_silent' | undefined>;
type HealthFailure = NonNullable<Awaited<ReturnType<HealthProbe>>> | 'probe_failed';

export interface SelfInstallerOptions {
  gatewayId: string;
  installRoot: string;
  /** The agent's entry file inside a bundle, e.g. `apps/edge-agent/dist/main.js`. */
  entry: string;
  runningVersion: string;
  hardware: string;
  trialWindowMs: number;
  maxBoots: number;
  unpack: UnpackLimits;
  health: HealthProbe;
  /** Stops the agent and exits with RESTART_EXIT_CODE; state is written before it is called. */
  restart(reason: string): void;
  /** Epoch ms. */
  now: () => number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  logger: Logger;
  /** Time between two health probes. */
  probeEveryMs?: number;
}

export class SelfInstaller implements Installer {
  readonly #o: SelfInstallerOptions;

  constructor(options: SelfInstallerOptions) {
    this.#o = options;
  }

  handles(deviceId: string, component: string): boolean {
    return deviceId === this.#o.gatewayId && component === AGENT_COMPONENT;
  }

  async installed(): Promise<InstalledFirmware> {
    return { hardware: this.#o.hardware, version: this.#o.runningVersion };
  }

  async install(request: InstallRequest): Promise<InstallOutcome> {
    const { installRoot: root, runningVersion: running } = this.#o;
    const target = request.manifest.version;
    const marker = await readMarker(root);
    const ours = marker !== undefined && marker.to.version === target ? marker : undefined;
    if (ours !== undefined && running === target) return this.#trial(ours, request);
    if (running === target) {
      // Committed (trial.json removed) before the result was reported.
      return { state: 'succeeded', version: running };
    }
    if (ours?.phase === 'rolled_back') {
      await this.#discard(ours);
      return {
        state: 'rolled_back',
        reason: ours.reason ?? 'trial_failed',
        version: running,
      };
    }
    if (ours !== undefined && ours.boots > 0) {
      // The new version was started and the old one runs again: it never passed its trial.
      if ((await currentDir(root)) !== ours.from.dir) await switchCurrent(root, ours.from.dir);
      await this.#discard(ours);
      return { state: 'rolled_back', reason: 'boot_failed', version: running };
    }
    return this.#installNew(request);
  }

  async #installNew(request: InstallRequest): Promise<InstallOutcome> {
    const { installRoot: root, runningVersion: running, logger } = this.#o;
    const target = request.manifest.version;
    const failed = (reason: string): InstallOutcome => ({
      state: 'failed',
      reason,
      version: running,
    });
    request.report({ state: 'installing' });
    const from = await currentDir(root);
    if (from === undefined) {
      logger.error({ installRoot: root }, 'no current version link: cannot update myself');
      return failed('install_root_missing');
    }
    const to = versionDir(target);
    if (to === from) return failed('install_conflict');
    const dest = join(root, to);
    await rm(dest, { recursive: true, force: true });
    const unpacking = join(root, VERSIONS_DIR, `.unpack-${randomBytes(6).toString('hex')}`);
    try {
      await unpackTarGz(request.artifactPath, unpacking, this.#o.unpack);
      const entry = safeEntryPath(unpacking, this.#o.entry);
      const found = await stat(entry).catch(() => undefined);
      if (!found?.isFile()) throw new BundleInvalid(`${this.#o.entry} is missing`);
      // The agent tells its version from the package.json above its dist/: a bundle that
      // says otherwise would never pass its trial as this version.
      const claimed = await bundleVersion(join(dirname(entry), '..', 'package.json'));
      if (claimed !== target) {
        throw new BundleInvalid(`it holds version ${claimed ?? 'unknown'}, not ${target}`);
      }
    } catch (err) {
      await rm(unpacking, { recursive: true, force: true });
      const detail = err instanceof Error ? err.message : String(err);
      logger.error({ err: detail, version: target }, 'bundle refused');
      return failed(err instanceof BundleInvalid ? 'bundle_invalid' : 'bundle_unreadable');
    }
    await rename(unpacking, dest);
    request.signal.throwIfAborted();

    const marker: TrialMarker = {
      v: 1,
      phase: 'switching',
      from: { version: running, dir: from },
      to: { version: target, dir: to },
      boots: 0,
      maxBoots: this.#o.maxBoots,
      trialStartedAt: null,
    };
    await writeMarker(root, marker);
    request.report({ state: 'rebooting', detail: `${running} → ${target}` });
    await switchCurrent(root, to);
    await writeMarker(root, { ...marker, phase: 'trial' });
    logger.warn({ from: running, to: target }, 'switched to the new version: restarting');
    return this.#restartInto('update', request.signal);
  }

  /** The new version runs: probe its health until it passes or the window closes. */
  async #trial(marker: TrialMarker, request: InstallRequest): Promise<InstallOutcome> {
    const { installRoot: root, logger } = this.#o;
    const target = marker.to.version;
    request.report({
      state: 'trial',
      detail: `boot ${marker.boots} of at most ${marker.maxBoots}`,
    });
    let current = marker;
    if (current.trialStartedAt === null || current.phase !== 'trial') {
      current = {
        ...current,
        phase: 'trial',
        trialStartedAt: current.trialStartedAt ?? this.#o.now(),
      };
      await writeMarker(root, current);
    }
    // Each start gets a part of the window: one restarted late in the trial (systemd, a
    // power cut) still has time to connect before it is judged. maxBoots bounds the total.
    const deadline = Math.max(
      current.trialStartedAt! + this.#o.trialWindowMs,
      this.#o.now() + this.#o.trialWindowMs / 4,
    );
    for (;;) {
      const failing: HealthFailure | undefined = await this.#o
        .health()
        .catch(() => 'probe_failed' as const);
      if (failing === undefined) break;
      if (this.#o.now() >= deadline) {
        const reason = `health_${failing}`;
        logger.error({ version: target, reason }, 'trial failed: switching back');
        await switchCurrent(root, current.from.dir);
        await writeMarker(root, { ...current, phase: 'rolled_back', reason });
        return this.#restartInto('rollback', request.signal);
      }
      await this.#o.sleep(this.#o.probeEveryMs ?? 1000, request.signal);
    }
    await clearMarker(root);
    await this.#prune([current.to.dir, current.from.dir]);
    logger.info({ version: target }, 'trial passed: new version committed');
    return { state: 'succeeded', version: target };
  }

  /** Ends a trial that failed: the version given up is removed, trial.json last. */
  async #discard(marker: TrialMarker): Promise<void> {
    const root = this.#o.installRoot;
    if ((await currentDir(root)) !== marker.to.dir) {
      await rm(join(root, marker.to.dir), { recursive: true, force: true }).catch((err: unknown) =>
        this.#o.logger.warn({ err, dir: marker.to.dir }, 'could not remove the version given up'),
      );
    }
    await clearMarker(root);
  }

  /** Keeps the running and the previous version; removes older ones and leftovers. */
  async #prune(keep: readonly string[]): Promise<void> {
    const dir = join(this.#o.installRoot, VERSIONS_DIR);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (keep.includes(`${VERSIONS_DIR}/${name}`)) continue;
      await rm(join(dir, name), { recursive: true, force: true }).catch((err: unknown) =>
        this.#o.logger.warn({ err, name }, 'could not remove an old version'),
      );
    }
  }

  /**
   * Asks for the restart. The agent then stops, which aborts `signal`: the update does not
   * end here but in the next start's `install`.
   */
  #restartInto(reason: string, signal: AbortSignal): Promise<InstallOutcome> {
    this.#o.restart(reason);
    return new Promise((_resolve, reject) => {
      const abort = () => reject(signal.reason ?? new Error('restarting'));
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
    });
  }
}

async function bundleVersion(path: string): Promise<string | undefined> {
  try {
    const pkg = JSON.parse(await readFile(path, 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version.slice(0, 64) : undefined;
  } catch {
    return undefined;
  }
}
