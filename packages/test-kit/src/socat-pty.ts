import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type BinaryLookupOptions, findBinary } from './binaries.js';
import { ManagedProcess, waitFor } from './process.js';
import { type ServiceHandle, type StopOptions, serviceDir } from './service.js';

export interface PtyPairOptions {
  /** A directory the caller owns (see `StartOptions.workDir`). */
  workDir?: string;
  lookup?: BinaryLookupOptions;
  /** Defaults to 10 s. */
  readyTimeoutMs?: number;
}

export interface PtyPairHandle extends ServiceHandle {
  /** The device's end: what a simulated device reads and writes. */
  readonly devicePath: string;
  /** The application's end, a stable name like `/dev/serial/by-id/...`. */
  readonly appPath: string;
  readonly plugged: boolean;
  /** The running socat; undefined while unplugged. */
  readonly process: ManagedProcess | undefined;
  /** Kills socat: both links disappear, open ends read EIO. */
  unplug(): Promise<void>;
  /** Starts a new pair under the same link names (new /dev/pts numbers), like a USB replug. */
  replug(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path); // follows the link: true only while the pty behind it exists
    return true;
  } catch {
    return false;
  }
}

/** Two connected ptys made by socat, reached through symlinks in the work dir. */
export async function ptyPair(options: PtyPairOptions = {}): Promise<PtyPairHandle> {
  const binary = findBinary('socat', options.lookup);
  const { dir, owned } = await serviceDir('socat-pty', options.workDir);
  const devicePath = join(dir, 'dev');
  const appPath = join(dir, 'app');
  const logPath = join(dir, 'socat-pty.log');
  const timeoutMs = options.readyTimeoutMs ?? 10_000;
  let current: ManagedProcess | undefined;
  let stopped: Promise<void> | undefined;

  const plug = async (): Promise<void> => {
    // A socat killed with SIGKILL leaves dangling links behind.
    await rm(devicePath, { force: true });
    await rm(appPath, { force: true });
    const proc = ManagedProcess.start({
      name: 'socat-pty',
      command: binary,
      args: ['-d', '-d', `pty,raw,echo=0,link=${devicePath}`, `pty,raw,echo=0,link=${appPath}`],
      cwd: dir,
      logPath,
    });
    current = proc;
    try {
      await waitFor(async () => (await exists(devicePath)) && (await exists(appPath)), {
        what: `pty links ${devicePath} and ${appPath}`,
        timeoutMs,
        intervalMs: 10,
        process: proc,
      });
    } catch (err) {
      await proc.stop(2_000);
      current = undefined;
      throw err;
    }
  };

  const unplug = async (): Promise<void> => {
    const proc = current;
    current = undefined;
    await proc?.stop();
  };

  try {
    await plug();
  } catch (err) {
    process.stderr.write(`[test-kit] socat-pty failed to start; kept ${dir}\n`);
    throw err;
  }

  return {
    name: 'socat-pty',
    workDir: dir,
    logPath,
    devicePath,
    appPath,
    get plugged() {
      return current?.running === true;
    },
    get process() {
      return current;
    },
    unplug,
    async replug() {
      if (stopped !== undefined) throw new Error('socat-pty was stopped');
      await unplug();
      await plug();
    },
    stop(stopOptions: StopOptions = {}) {
      stopped ??= (async () => {
        await unplug();
        if (owned !== undefined) {
          await owned.cleanup({ keep: stopOptions.keepLogs === true });
        } else if (stopOptions.keepLogs === true) {
          process.stderr.write(`[test-kit] kept ${dir}\n`);
        }
      })();
      return stopped;
    },
  };
}
