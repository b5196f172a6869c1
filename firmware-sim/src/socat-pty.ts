import { type ChildProcess, spawn } from 'node:child_process';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A pty pair made by socat: the device opens `devicePath`, the application (the edge
 * agent) opens `appPath`. Killing socat is an unplug: both ends read EIO and the links
 * vanish; {@link SocatPty.replug} makes a new pair under the same link names, like a USB
 * device coming back.
 */
export class SocatPty {
  readonly devicePath: string;
  readonly appPath: string;
  readonly #socat: string;
  #child: ChildProcess | undefined;
  #stopped = false;

  private constructor(dir: string, name: string, socat: string) {
    this.appPath = join(dir, name);
    this.devicePath = join(dir, `${name}.device`);
    this.#socat = socat;
  }

  /** Links `<dir>/<name>` (application end) and `<dir>/<name>.device`. */
  static async start(dir: string, name: string, socat = 'socat'): Promise<SocatPty> {
    const pty = new SocatPty(dir, name, socat);
    await pty.#plug();
    return pty;
  }

  get plugged(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null;
  }

  /** The socat process id while plugged. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async unplug(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined) return;
    livePtys.delete(child);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(2000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }

  async replug(): Promise<void> {
    if (this.#stopped) throw new Error('pty pair was stopped');
    await this.unplug();
    await this.#plug();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.unplug();
    await rm(this.appPath, { force: true });
    await rm(this.devicePath, { force: true });
  }

  async #plug(): Promise<void> {
    // A socat killed with SIGKILL leaves its links behind.
    await rm(this.appPath, { force: true });
    await rm(this.devicePath, { force: true });
    const child = spawn(
      this.#socat,
      [`pty,raw,echo=0,link=${this.devicePath}`, `pty,raw,echo=0,link=${this.appPath}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    const failed = new Promise<Error>((resolve) => {
      child.once('error', (err) => resolve(err));
      child.once('exit', (code) => resolve(new Error(`socat exited (${code}): ${stderr.trim()}`)));
    });
    this.#child = child;
    livePtys.add(child);
    const deadline = Date.now() + 5000;
    for (;;) {
      const result = await Promise.race([failed, linksExist(this).then((ok) => ok || undefined)]);
      if (result instanceof Error) {
        await this.unplug();
        throw result;
      }
      if (result === true) return;
      if (Date.now() > deadline) {
        await this.unplug();
        throw new Error(`socat made no pty links ${this.devicePath}, ${this.appPath} in 5 s`);
      }
      await sleep(10);
    }
  }
}

async function linksExist(pty: SocatPty): Promise<boolean> {
  try {
    await stat(pty.devicePath); // follows the link: true only while the pty exists
    await stat(pty.appPath);
    return true;
  } catch {
    return false;
  }
}

// socat must not outlive the simulator, however it ends.
const livePtys = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of livePtys) child.kill('SIGKILL');
});
