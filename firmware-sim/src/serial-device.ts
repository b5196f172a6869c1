import { createHash } from 'node:crypto';
import {
  formatReading,
  LineSplitter,
  parseLine,
  type ReadingValue,
} from '@outpost/protocol/serial-line';
import { createSerialPort } from '@outpost/serialport/hangup-aware-binding';
import type { SerialPort } from 'serialport';
import { Bootloader } from './bootloader.js';
import { type Device, type DeviceFault, type DeviceStats, ReadingSource } from './device.js';
import { badCrcLine, garbageLine, partialLine } from './line-faults.js';
import { deriveSeed, mulberry32, type Random } from './random.js';
import type { SerialDeviceConfig } from './scenario.js';

/** Unplugs and replugs the link itself (a socat pty pair the simulator owns). */
export interface SerialLinkControl {
  unplug(): Promise<void>;
  replug(): Promise<void>;
}

export interface SerialDeviceOptions {
  /** The device's end of the link. */
  path: string;
  /** With it, an `unplug` fault unplugs the link; without, the device closes its port. */
  link?: SerialLinkControl;
  now?: () => number;
  /** How often to try to reopen a port that went away; defaults to 100 ms. */
  reopenMs?: number;
  /** Readings are skipped while this many writes are unfinished (a stalled link). */
  maxPendingWrites?: number;
  /** Hears about port trouble; nothing is logged per reading. */
  onEvent?: (event: SerialDeviceEvent) => void;
}

export type SerialDeviceEvent =
  | { type: 'open'; path: string }
  | { type: 'close'; path: string; reason: string }
  | { type: 'error'; path: string; message: string };

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * One simulated serial device on the device end of a pty (or any serial path). It opens
 * the path with serialport, which handles socat ptys (@outpost/serialport has its one
 * fix), writes PROTOCOL.md §10 readings at its rate, answers `ID?` and the `FW` lines
 * through its {@link Bootloader}, reopens its port when it comes back after an unplug, and
 * applies injected faults.
 */
export class SerialDevice implements Device {
  readonly id: string;
  readonly #config: SerialDeviceConfig;
  readonly #options: SerialDeviceOptions;
  readonly #now: () => number;
  readonly #source: ReadingSource;
  readonly #bootloader: Bootloader;
  readonly #faultRandom: Random;
  readonly #splitter = new LineSplitter();
  readonly #counters = {
    sent: {} as Record<string, number>,
    readings: 0,
    garbageLines: 0,
    badCrcLines: 0,
    partialLines: 0,
    skipped: 0,
    writeErrors: 0,
    opens: 0,
  };
  #port: SerialPort | undefined;
  #pending = 0;
  #pendingDone: (() => void)[] = [];
  #startedAt = 0;
  #readingIndex = 0;
  #silentUntil = 0;
  #unpluggedUntil = 0;
  #clockSkewMs = 0;
  #running = false;
  /** False from an open until the first `ID?` when the device waits for one. */
  #heard = true;
  #inputQueue: Promise<void> = Promise.resolve();
  readonly #timers = new Set<NodeJS.Timeout>();
  #readingTimer: NodeJS.Timeout | undefined;
  #bootTimer: NodeJS.Timeout | undefined;

  constructor(config: SerialDeviceConfig, options: SerialDeviceOptions) {
    this.id = config.id;
    this.#config = config;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#source = new ReadingSource(config.metrics, deriveSeed(config.seed, config.id));
    this.#bootloader = new Bootloader(config.identity, {
      ...config.bootloader,
      sha256: sha256Hex,
    });
    this.#faultRandom = mulberry32(deriveSeed(config.seed, `${config.id}#faults`));
    for (const metric of this.#source.metrics) this.#counters.sent[metric] = 0;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#startedAt = this.#now();
    this.#readingIndex = 0;
    await this.#open();
    this.#scheduleReading();
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#readingTimer !== undefined) clearTimeout(this.#readingTimer);
    if (this.#bootTimer !== undefined) clearTimeout(this.#bootTimer);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await this.#drain(2000);
    // tcdrain: wait until the other side of the pty (socat) has taken every byte, so
    // nothing counted as sent is lost when the link is torn down right after.
    const port = this.#port;
    if (port?.isOpen === true) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        port.drain(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.#close();
  }

  stats(): DeviceStats {
    const identity = this.#bootloader.identity;
    return {
      id: this.id,
      transport: 'serial',
      hardware: identity.hardware,
      serial: identity.serial,
      version: identity.version,
      ...this.#counters,
      sent: { ...this.#counters.sent },
      connected: this.#port?.isOpen === true,
      clockSkewMs: this.#clockSkewMs,
      firmware: this.#bootloader.stats,
    };
  }

  inject(fault: DeviceFault): void {
    const now = this.#now();
    // A silent or rebooting device produces no broken lines either.
    const speaking = this.#canSpeak(now);
    switch (fault.kind) {
      case 'garbage':
        for (let i = 0; speaking && i < fault.lines; i++) {
          this.#write(garbageLine(this.#faultRandom), () => this.#counters.garbageLines++);
        }
        break;
      case 'badCrc':
        for (let i = 0; speaking && i < fault.lines; i++) {
          const line = badCrcLine(this.#sample(now), this.#faultRandom);
          this.#write(line, () => this.#counters.badCrcLines++);
        }
        break;
      case 'partialLine':
        for (let i = 0; speaking && i < fault.lines; i++) {
          const line = partialLine(this.#sample(now), this.#faultRandom);
          this.#write(line, () => this.#counters.partialLines++);
        }
        break;
      case 'silence':
        this.#silentUntil = Math.max(this.#silentUntil, now + fault.forMs);
        break;
      case 'unplug':
        void this.#unplug(fault.forMs);
        break;
      case 'clockSkew':
        this.#clockSkewMs = fault.byMs;
        break;
      case 'stuck':
        this.#source.stick(fault.metric, this.#seconds(now), fault.forMs / 1000);
        break;
      case 'flash':
        this.#bootloader.configure(fault.flash);
        break;
    }
  }

  // --- readings --------------------------------------------------------------------------

  #seconds(now: number): number {
    return (now - this.#startedAt) / 1000;
  }

  #sample(now: number): ReadingValue[] {
    return this.#source.sample(this.#seconds(now));
  }

  /** Readings fall due at start + n·period, so a late timer does not shift later ones. */
  #scheduleReading(): void {
    if (!this.#running) return;
    const periodMs = 1000 / this.#config.ratePerS;
    const dueAt = this.#startedAt + this.#readingIndex * periodMs;
    this.#readingTimer = setTimeout(
      () => {
        const now = this.#now();
        // After a stall (a suspended machine), skip what was missed instead of bursting.
        const missed = Math.floor((now - dueAt) / periodMs);
        if (missed > 0) {
          this.#counters.skipped += missed;
          this.#readingIndex += missed;
        }
        this.#readingIndex++;
        this.#emitReading(now);
        this.#scheduleReading();
      },
      Math.max(0, dueAt - this.#now()),
    );
  }

  #emitReading(now: number): void {
    const values = this.#sample(now);
    if (!this.#canSpeak(now) || this.#pending >= (this.#options.maxPendingWrites ?? 64)) {
      this.#counters.skipped++;
      return;
    }
    const wrote = this.#write(formatReading(values), () => {
      this.#counters.readings++;
      for (const [metric] of values) {
        this.#counters.sent[metric] = (this.#counters.sent[metric] ?? 0) + 1;
      }
    });
    if (!wrote) this.#counters.skipped++;
  }

  #canSpeak(now: number): boolean {
    return this.#heard && now >= this.#silentUntil && !this.#bootloader.isRebooting(now);
  }

  // --- input -----------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    for (const text of this.#splitter.push(chunk)) {
      // One line at a time, like firmware with a single command loop: a slow flash write
      // delays the answers to whatever came after it.
      this.#inputQueue = this.#inputQueue
        .then(() => this.#handleLine(text))
        .catch((err: Error) => {
          this.#options.onEvent?.({
            type: 'error',
            path: this.#options.path,
            message: err.message,
          });
        });
    }
  }

  async #handleLine(text: string): Promise<void> {
    const now = this.#now();
    const line = parseLine(text);
    if (line.kind === 'id_request') this.#heard = true;
    if (!this.#running || !this.#canSpeak(now)) return;
    const reply = this.#bootloader.handle(line, now);
    if (reply === undefined) return;
    if (reply.delayMs > 0) await this.#sleep(reply.delayMs);
    if (!this.#running) return;
    // Written even when this reply started a reboot: `OK <size>` comes before the reset.
    for (const line of reply.lines) this.#write(line);
    this.#scheduleBoot();
  }

  /** Wakes up when the bootloader has lines due (the ID after a reboot, a revert). */
  #scheduleBoot(): void {
    const due = this.#bootloader.nextDueMs();
    if (this.#bootTimer !== undefined) clearTimeout(this.#bootTimer);
    this.#bootTimer = undefined;
    if (due === undefined || !this.#running) return;
    this.#bootTimer = setTimeout(
      () => {
        this.#bootTimer = undefined;
        for (const line of this.#bootloader.tick(this.#now())) this.#write(line);
        this.#scheduleBoot();
      },
      Math.max(0, due - this.#now()),
    );
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        resolve();
      }, ms);
      this.#timers.add(timer);
    });
  }

  // --- the port --------------------------------------------------------------------------

  /**
   * Writes if the port is open; `onWritten` runs only once the data reached the port
   * (serialport's write callback without error). Returns whether the write was started.
   */
  #write(data: string | Uint8Array, onWritten?: () => void): boolean {
    const port = this.#port;
    if (port === undefined || !port.isOpen) return false;
    this.#pending++;
    port.write(data, (err) => {
      if (port !== this.#port) return; // a closed port's leftovers: counted as not sent
      this.#settle();
      if (err) this.#counters.writeErrors++;
      else onWritten?.();
    });
    return true;
  }

  #settle(): void {
    this.#pending--;
    if (this.#pending === 0) for (const done of this.#pendingDone.splice(0)) done();
  }

  #drain(timeoutMs: number): Promise<void> {
    if (this.#pending === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#pendingDone.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async #open(): Promise<void> {
    if (!this.#running || this.#port !== undefined || this.#now() < this.#unpluggedUntil) {
      return;
    }
    const path = this.#options.path;
    const port = createSerialPort(path, this.#config.baud);
    const error = await new Promise<Error | null>((resolve) => port.open(resolve));
    if (error !== null || !this.#running) {
      if (error === null) await closePort(port);
      this.#retryOpen();
      return;
    }
    this.#port = port;
    this.#pending = 0;
    this.#splitter.reset();
    this.#heard = !this.#config.waitForId;
    this.#counters.opens++;
    port.on('data', (chunk: Buffer) => this.#onData(chunk));
    port.on('error', (err) =>
      this.#options.onEvent?.({ type: 'error', path, message: err.message }),
    );
    port.on('close', (err?: Error & { disconnected?: boolean }) => {
      if (this.#port !== port) return;
      this.#port = undefined;
      this.#releasePending();
      this.#options.onEvent?.({ type: 'close', path, reason: err?.message ?? 'closed' });
      this.#retryOpen();
    });
    this.#options.onEvent?.({ type: 'open', path });
  }

  #retryOpen(): void {
    if (!this.#running) return;
    const waitMs = Math.max(this.#options.reopenMs ?? 100, this.#unpluggedUntil - this.#now());
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void this.#open();
    }, waitMs);
    this.#timers.add(timer);
  }

  /** Writes stuck in a port that went away will never call back: stop waiting for them. */
  #releasePending(): void {
    this.#pending = 0;
    for (const done of this.#pendingDone.splice(0)) done();
  }

  async #close(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    this.#releasePending();
    if (port !== undefined) await closePort(port);
  }

  async #unplug(forMs: number): Promise<void> {
    const link = this.#options.link;
    if (link !== undefined) {
      await link.unplug();
      await this.#sleep(forMs);
      if (this.#running) await link.replug();
      return;
    }
    this.#unpluggedUntil = this.#now() + forMs;
    await this.#close();
    this.#retryOpen();
  }
}

function closePort(port: SerialPort): Promise<void> {
  return new Promise((resolve) => {
    if (!port.isOpen) {
      resolve();
      return;
    }
    port.close(() => resolve());
  });
}
