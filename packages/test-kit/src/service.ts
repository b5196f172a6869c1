import { chmod, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BinaryLookupOptions } from './binaries.js';
import { freePort } from './ports.js';
import { type ManagedProcess, ReadinessError } from './process.js';
import { makeWorkDir, type WorkDir } from './workdir.js';

export interface StopOptions {
  /** Keep the service's work dir (logs, data) and print its path, e.g. after a failure. */
  keepLogs?: boolean;
}

/** What every started service offers. */
export interface ServiceHandle {
  readonly name: string;
  /** The service's own directory: data, config and `<name>.log`. */
  readonly workDir: string;
  readonly logPath: string;
  /** Stops the service; removes its work dir unless kept or given by the caller. Idempotent. */
  stop(options?: StopOptions): Promise<void>;
}

/** A daemon listening on 127.0.0.1. */
export interface PortServiceHandle extends ServiceHandle {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** The running process; a new one after {@link restart}. */
  readonly process: ManagedProcess;
  /** Stops gracefully (if still running) and starts again on the same port with the same data. */
  restart(): Promise<void>;
  /** Crash drill: SIGKILL, no shutdown. {@link restart} brings it back. */
  kill9(): Promise<void>;
}

export interface StartOptions {
  /**
   * A directory the caller owns; the service makes its own subdirectory in it and leaves
   * it there on stop. Without it a fresh work dir is made and removed on stop.
   */
  workDir?: string;
  /** A fixed port; by default a free one is picked (and re-picked if taken meanwhile). */
  port?: number;
  /** Overrides where binaries are looked up. */
  lookup?: BinaryLookupOptions;
  /** How long to wait for readiness; defaults to 30 s. */
  readyTimeoutMs?: number;
}

export interface LaunchContext {
  port: number;
  /** The service's directory. */
  dir: string;
  logPath: string;
  readyTimeoutMs: number;
}

export interface ServiceSpec {
  name: string;
  /** Starts the process for `ctx.port` (writing config files first if needed). */
  spawn(ctx: LaunchContext): ManagedProcess | Promise<ManagedProcess>;
  /** Resolves when the process serves; should pass `process` to the wait helpers. */
  ready(process: ManagedProcess, ctx: LaunchContext): Promise<void>;
  /** Graceful stop; defaults to `process.stop()`. */
  shutdown?(process: ManagedProcess): Promise<unknown>;
}

const PORT_ATTEMPTS = 3;
const RESTART_ATTEMPTS = 3;

/** The service directory: inside the caller's dir, or a fresh work dir. */
export async function serviceDir(
  name: string,
  workDir: string | undefined,
): Promise<{ dir: string; owned: WorkDir | undefined }> {
  if (workDir !== undefined) {
    const dir = await mkdtemp(join(workDir, `${name}-`));
    // As in makeWorkDir: daemons running as their own user must reach their subdirs.
    await chmod(dir, 0o755);
    return { dir, owned: undefined };
  }
  const owned = await makeWorkDir(name);
  return { dir: owned.path, owned };
}

/**
 * Runs one daemon for a port service: start with port retries, restart, crash, stop.
 * The starters in this package wrap it in their handle.
 */
export class ServiceRunner {
  readonly name: string;
  readonly dir: string;
  readonly logPath: string;
  readonly readyTimeoutMs: number;
  readonly #spec: ServiceSpec;
  readonly #owned: WorkDir | undefined;
  #port = 0;
  #process: ManagedProcess | undefined;
  #stopped: Promise<void> | undefined;

  private constructor(
    spec: ServiceSpec,
    dir: string,
    owned: WorkDir | undefined,
    readyTimeoutMs: number,
  ) {
    this.name = spec.name;
    this.#spec = spec;
    this.dir = dir;
    this.#owned = owned;
    this.logPath = join(dir, `${spec.name}.log`);
    this.readyTimeoutMs = readyTimeoutMs;
  }

  static async start(spec: ServiceSpec, options: StartOptions): Promise<ServiceRunner> {
    const { dir, owned } = await serviceDir(spec.name, options.workDir);
    const runner = new ServiceRunner(spec, dir, owned, options.readyTimeoutMs ?? 30_000);
    await runner.#startFirst(options.port);
    return runner;
  }

  get port(): number {
    return this.#port;
  }

  get process(): ManagedProcess {
    if (this.#process === undefined) throw new Error(`${this.name} has no process`);
    return this.#process;
  }

  async #startFirst(fixedPort: number | undefined): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const port = fixedPort ?? (await freePort());
      try {
        await this.#launch(port);
        return;
      } catch (err) {
        // Another process may have taken the port between freePort() and bind: retry.
        const retry =
          fixedPort === undefined &&
          attempt < PORT_ATTEMPTS &&
          err instanceof ReadinessError &&
          err.reason === 'exited';
        if (!retry) {
          process.stderr.write(`[test-kit] ${this.name} failed to start; kept ${this.dir}\n`);
          throw err;
        }
      }
    }
  }

  async #launch(port: number): Promise<void> {
    const ctx: LaunchContext = {
      port,
      dir: this.dir,
      logPath: this.logPath,
      readyTimeoutMs: this.readyTimeoutMs,
    };
    const proc = await this.#spec.spawn(ctx);
    this.#process = proc;
    this.#port = port;
    try {
      await this.#spec.ready(proc, ctx);
    } catch (err) {
      await proc.stop(2_000);
      throw err;
    }
  }

  async restart(): Promise<void> {
    if (this.#stopped !== undefined) throw new Error(`${this.name} was stopped`);
    await this.#shutdown();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#launch(this.#port);
        return;
      } catch (err) {
        // Right after a kill -9, leftovers of the old process (PostgreSQL backends still
        // attached to shared memory, a socket in teardown) can briefly refuse the new one.
        const retry =
          attempt < RESTART_ATTEMPTS && err instanceof ReadinessError && err.reason === 'exited';
        if (!retry) throw err;
        await sleep(250 * attempt);
      }
    }
  }

  async kill9(): Promise<void> {
    await this.#process?.kill9();
  }

  async #shutdown(): Promise<void> {
    const proc = this.#process;
    if (proc === undefined || !proc.running) return;
    if (this.#spec.shutdown !== undefined) {
      await this.#spec.shutdown(proc);
    } else {
      await proc.stop();
    }
  }

  stop(options: StopOptions = {}): Promise<void> {
    this.#stopped ??= (async () => {
      await this.#shutdown();
      if (this.#owned !== undefined) {
        await this.#owned.cleanup({ keep: options.keepLogs === true });
      } else if (options.keepLogs === true) {
        process.stderr.write(`[test-kit] kept ${this.dir}\n`);
      }
    })();
    return this.#stopped;
  }
}

/** The common part of every port service handle, read live from the runner. */
export function portServiceHandle(runner: ServiceRunner, url: () => string): PortServiceHandle {
  return {
    name: runner.name,
    workDir: runner.dir,
    logPath: runner.logPath,
    host: '127.0.0.1',
    get port() {
      return runner.port;
    },
    get url() {
      return url();
    },
    get process() {
      return runner.process;
    },
    restart: () => runner.restart(),
    kill9: () => runner.kill9(),
    stop: (options) => runner.stop(options),
  };
}
