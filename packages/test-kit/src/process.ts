import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOOPBACK } from './ports.js';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  error?: Error;
}

function describeExit(status: ExitStatus): string {
  if (status.error !== undefined) return `failed to start (${status.error.message})`;
  if (status.signal !== null) return `was killed by ${status.signal}`;
  return `exited with code ${status.code}`;
}

// Every child still running is killed, and every registered cleanup runs, when this process
// exits or is terminated by a signal, so an interrupted test run leaves no daemons behind
// holding ports and directories.
const liveChildren = new Set<ChildProcess>();
const exitCleanups = new Set<() => void>();
let exitHooksInstalled = false;

function runExitCleanups(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  for (const cleanup of exitCleanups) {
    try {
      cleanup();
    } catch {
      // best effort while exiting
    }
  }
  exitCleanups.clear();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', runExitCleanups);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      runExitCleanups();
      process.removeListener(signal, onSignal);
      // Only this hook was listening: keep the default behaviour (terminate) for the signal.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * Runs `cleanup` (synchronously) when this process exits or is terminated by SIGINT, SIGTERM
 * or SIGHUP. Returns a function that unregisters it.
 */
export function onProcessExit(cleanup: () => void): () => void {
  installExitHooks();
  exitCleanups.add(cleanup);
  return () => {
    exitCleanups.delete(cleanup);
  };
}

function track(child: ChildProcess): void {
  installExitHooks();
  liveChildren.add(child);
  const forget = (): void => {
    liveChildren.delete(child);
  };
  child.once('exit', forget);
  child.once('error', forget);
}

/** Children started through this module that have not exited yet (for leak checks). */
export function liveChildPids(): number[] {
  return [...liveChildren].map((c) => c.pid).filter((pid): pid is number => pid !== undefined);
}

export interface ManagedProcessOptions {
  /** Short name used in messages, e.g. `redis`. */
  name: string;
  command: string;
  args?: readonly string[];
  /** stdout and stderr are appended here; the file survives the process for post-mortems. */
  logPath: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as this user and group (only possible as root). */
  uid?: number;
  gid?: number;
  /** Signal for a graceful stop; defaults to SIGTERM. */
  stopSignal?: NodeJS.Signals;
  /** How long {@link ManagedProcess.stop} waits before SIGKILL; defaults to 10 s. */
  stopTimeoutMs?: number;
}

const TAIL_BYTES = 64 * 1024;

/** The last `lines` lines of a log file (reads at most its last 64 KiB). */
export function readLogTail(logPath: string, lines = 40): string {
  let fd: number;
  try {
    fd = openSync(logPath, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const text = buffer.toString('utf8').replace(/\n$/, '');
    return text.split('\n').slice(-lines).join('\n');
  } finally {
    closeSync(fd);
  }
}

/**
 * A child process whose output goes straight to a log file (no pipes, so a busy or paused
 * test can never block the child on a full pipe), with graceful and hard stops.
 */
export class ManagedProcess {
  readonly name: string;
  readonly logPath: string;
  readonly commandLine: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<ExitStatus>;
  readonly #stopSignal: NodeJS.Signals;
  readonly #stopTimeoutMs: number;
  #status: ExitStatus | undefined;
  #stopping: Promise<ExitStatus> | undefined;

  private constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.logPath = options.logPath;
    this.#stopSignal = options.stopSignal ?? 'SIGTERM';
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    const args = options.args ?? [];
    this.commandLine = [options.command, ...args].join(' ');
    appendFileSync(
      this.logPath,
      `--- ${new Date().toISOString()} start ${this.name}: ${this.commandLine}\n`,
    );
    const fd = openSync(this.logPath, 'a');
    try {
      this.#child = spawn(options.command, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', fd, fd],
        uid: options.uid,
        gid: options.gid,
      });
    } finally {
      closeSync(fd);
    }
    track(this.#child);
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#status ??= { code, signal };
        resolve(this.#status);
      });
      this.#child.once('error', (error) => {
        // 'error' without 'exit' means the process never started.
        if (this.#child.pid === undefined || this.#child.exitCode !== null) {
          this.#status ??= { code: null, signal: null, error };
          resolve(this.#status);
        }
      });
    });
  }

  static start(options: ManagedProcessOptions): ManagedProcess {
    return new ManagedProcess(options);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Undefined while running. */
  get exitStatus(): ExitStatus | undefined {
    return this.#status;
  }

  get running(): boolean {
    return this.#status === undefined;
  }

  /** The whole log file. */
  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  tail(lines = 40): string {
    return readLogTail(this.logPath, lines);
  }

  /** Resolves when the process exits; rejects after `timeoutMs` if given. */
  async waitForExit(timeoutMs?: number): Promise<ExitStatus> {
    if (timeoutMs === undefined) return this.#exited;
    const ac = new AbortController();
    try {
      return await Promise.race([
        this.#exited,
        sleep(timeoutMs, undefined, { signal: ac.signal }).then(() => {
          throw new Error(
            `${this.name} did not exit within ${timeoutMs} ms\n${this.#logSection()}`,
          );
        }),
      ]);
    } finally {
      ac.abort();
    }
  }

  /** Sends the stop signal, then SIGKILL after the stop timeout. Idempotent. */
  stop(timeoutMs = this.#stopTimeoutMs): Promise<ExitStatus> {
    if (this.#status !== undefined) return Promise.resolve(this.#status);
    this.#stopping ??= (async () => {
      this.#signal(this.#stopSignal);
      try {
        return await this.waitForExit(timeoutMs);
      } catch {
        this.#signal('SIGKILL');
        return this.#exited;
      }
    })();
    return this.#stopping;
  }

  /** A crash: SIGKILL, no chance to flush or clean up. */
  kill9(): Promise<ExitStatus> {
    if (this.#status === undefined) this.#signal('SIGKILL');
    return this.#exited;
  }

  /** Sends an arbitrary signal (e.g. SIGSTOP/SIGCONT for a hung-service drill). */
  signal(signal: NodeJS.Signals): void {
    this.#signal(signal);
  }

  #signal(signal: NodeJS.Signals): void {
    try {
      this.#child.kill(signal);
    } catch {
      // exited in the meantime
    }
  }

  #logSection(): string {
    return formatLogSection(this.logPath, this.tail());
  }
}

function formatLogSection(logPath: string, tail: string): string {
  return `--- last lines of ${logPath} ---\n${tail}\n--- end of ${logPath} ---`;
}

export interface WaitOptions {
  /** Defaults to 30 s. */
  timeoutMs?: number;
  /** Pause between checks; defaults to 50 ms. */
  intervalMs?: number;
  /** What is awaited, for the error message, e.g. `redis on port 6400`. */
  what?: string;
  /** Fail as soon as this process exits, and put its log tail in the error. */
  process?: ManagedProcess;
}

/** A readiness check that timed out, or whose process exited first. */
export class ReadinessError extends Error {
  readonly reason: 'timeout' | 'exited';
  readonly logPath: string | undefined;

  constructor(
    reason: 'timeout' | 'exited',
    message: string,
    logPath: string | undefined,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ReadinessError';
    this.reason = reason;
    this.logPath = logPath;
  }
}

export interface ReadinessMessageParts {
  reason: 'timeout' | 'exited';
  what: string;
  timeoutMs: number;
  lastError?: unknown;
  processName?: string;
  exit?: ExitStatus;
  logPath?: string;
  logTail?: string;
}

/** The message of a {@link ReadinessError}; pure so its wording is unit-tested. */
export function readinessMessage(parts: ReadinessMessageParts): string {
  const lines: string[] = [];
  if (parts.reason === 'exited' && parts.exit !== undefined) {
    lines.push(
      `${parts.processName ?? 'process'} ${describeExit(parts.exit)} while waiting for ${parts.what}`,
    );
  } else {
    lines.push(`timed out after ${parts.timeoutMs} ms waiting for ${parts.what}`);
  }
  if (parts.lastError !== undefined) {
    const text =
      parts.lastError instanceof Error ? parts.lastError.message : String(parts.lastError);
    lines.push(`last check failed with: ${text}`);
  }
  if (parts.logPath !== undefined) {
    lines.push(formatLogSection(parts.logPath, parts.logTail ?? ''));
  }
  return lines.join('\n');
}

const EXITED = Symbol('exited');

/**
 * Polls `check` until it returns a truthy value, which is returned. A check that throws
 * counts as "not yet"; its last error is reported on timeout.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  options: WaitOptions = {},
): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 50;
  const what = options.what ?? 'condition';
  const proc = options.process;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  const fail = (reason: 'timeout' | 'exited'): ReadinessError =>
    new ReadinessError(
      reason,
      readinessMessage({
        reason,
        what,
        timeoutMs,
        lastError,
        processName: proc?.name,
        exit: proc?.exitStatus,
        logPath: proc?.logPath,
        logTail: proc?.tail(),
      }),
      proc?.logPath,
      lastError,
    );
  const exited = proc?.waitForExit().then(() => EXITED);
  for (;;) {
    if (proc !== undefined && !proc.running) throw fail('exited');
    try {
      const attempt = Promise.resolve().then(check);
      // A check still pending when the process exits must not become an unhandled rejection.
      attempt.catch(() => undefined);
      const value = exited === undefined ? await attempt : await Promise.race([attempt, exited]);
      if (value === EXITED) throw fail('exited');
      if (value) return value as Exclude<T, false | null | undefined | 0 | ''>;
    } catch (err) {
      if (err instanceof ReadinessError) throw err;
      lastError = err;
    }
    if (proc !== undefined && !proc.running) throw fail('exited');
    const left = deadline - Date.now();
    if (left <= 0) throw fail('timeout');
    await sleep(Math.min(intervalMs, left));
  }
}

function tcpConnects(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out`));
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
  });
}

/** Waits until a TCP connection to 127.0.0.1:`port` succeeds. */
export async function waitForTcp(
  port: number,
  options: WaitOptions & { host?: string } = {},
): Promise<void> {
  const host = options.host ?? LOOPBACK;
  await waitFor(() => tcpConnects(host, port, 2_000), {
    ...options,
    what: options.what ?? `TCP ${host}:${port}`,
  });
}

/** Waits until `url` answers with `status` (or any 2xx when not given). */
export async function waitForHttp(
  url: string,
  options: WaitOptions & { status?: number } = {},
): Promise<void> {
  const { status } = options;
  await waitFor(
    async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      const ok = status === undefined ? res.ok : res.status === status;
      if (!ok) throw new Error(`${url} answered ${res.status}`);
      return true;
    },
    { ...options, what: options.what ?? `HTTP ${status ?? '2xx'} from ${url}` },
  );
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** SIGKILL after this long; defaults to 30 s. */
  timeoutMs?: number;
  /** Throw {@link CommandError} on a non-zero exit; defaults to true. */
  check?: boolean;
}

export interface RunResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly result: RunResult;

  constructor(commandLine: string, result: RunResult) {
    const output = (result.stderr || result.stdout).trim();
    super(`\`${commandLine}\` ${describeExit(result)}${output === '' ? '' : `:\n${output}`}`);
    this.name = 'CommandError';
    this.result = result;
  }
}

/** Runs a short command to completion, capturing its output. */
export function runCommand(
  command: string,
  args: readonly string[] = [],
  options: RunOptions = {},
): Promise<RunResult> {
  const commandLine = [command, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      uid: options.uid,
      gid: options.gid,
    });
    track(child);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    if (options.input !== undefined) child.stdin?.end(options.input);
    let timedOut = false;
    let done = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    const finish = (status: ExitStatus): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const result: RunResult = {
        ...status,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      if (timedOut) {
        reject(new CommandError(`${commandLine} (timed out)`, result));
      } else if ((options.check ?? true) && (status.code !== 0 || status.error !== undefined)) {
        reject(new CommandError(commandLine, result));
      } else {
        resolve(result);
      }
    };
    child.once('error', (error) => finish({ code: null, signal: null, error }));
    child.once('close', (code, signal) => finish({ code, signal }));
  });
}
