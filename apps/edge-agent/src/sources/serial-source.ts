import { performance } from 'node:perf_hooks';
import {
  type DeviceIdentity,
  formatIdRequest,
  LineSplitter,
  type SerialLine,
} from '@outpost/protocol/serial-line';
import { hangupAwareBinding } from '@outpost/serialport/hangup-aware-binding';
import type { Logger } from 'pino';
import { SerialPort } from 'serialport';
import { createParser, type LineParser, type ParseResult } from './line-parsers.js';
import { PortDiscovery } from './port-discovery.js';
import { PortSupervisor, type SupervisorAction, type SupervisorEvent } from './port-supervisor.js';
import type {
  Clock,
  MonotonicClock,
  PortStatus,
  ReadingSink,
  Source,
  SourceReading,
} from './source.js';
import type { SerialSourceConfig } from './source-config.js';

export interface SerialSourceOptions {
  sink: ReadingSink;
  /** Wall clock: stamps readings whose line carries no time. */
  clock: Clock;
  /** Times the watchdog, `ID?` retries and backoff; defaults to `performance.now`. */
  monotonic?: MonotonicClock;
  /** Jitter of the backoff; defaults to `Math.random`. */
  random?: () => number;
  logger?: Logger;
  discovery?: PortDiscovery;
  /** A serialport binding; defaults to the platform binding that notices hangups. */
  binding?: typeof SerialPort.binding;
}

/** Longest `start()` waits for the first open attempt before returning anyway. */
const START_WAIT_MS = 5_000;

/**
 * One serial port read with serialport: bound by path or USB ids (re-resolved before every
 * open), supervised by {@link PortSupervisor} (reopen with backoff, silent watchdog, `ID?`),
 * its lines split with the protocol's LineSplitter (bounded, resyncs at the next `\n`) and
 * read by a declarative parser. Bad lines are counted per reason; nothing a device sends
 * throws out of here, and a throwing sink is logged, not fatal.
 */
export class SerialSource implements Source {
  readonly kind = 'serial';
  readonly #config: SerialSourceConfig;
  readonly #sink: ReadingSink;
  readonly #clock: Clock;
  readonly #monotonic: MonotonicClock;
  readonly #log: Logger | undefined;
  readonly #discovery: PortDiscovery;
  readonly #binding: typeof SerialPort.binding;
  readonly #supervisor: PortSupervisor;
  readonly #parser: LineParser;
  readonly #splitter: LineSplitter;
  readonly #frameListeners = new Set<(frame: SerialLine) => void>();
  readonly #badByReason: Record<string, number> = {};
  readonly #settledWaiters: (() => void)[] = [];
  #port: SerialPort | undefined;
  #opening: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #timerDue = Number.POSITIVE_INFINITY;
  #resolvedPath: string | undefined;
  #identity: DeviceIdentity | undefined;
  #lastFrameAt: number | undefined;
  #identifiedAt: number | undefined;
  /** Last arrival time given to a line (epoch ms), so each line gets its own instant. */
  #lastArrivalMs = 0;
  #lines = 0;
  #frames = 0;
  #readings = 0;
  #badLines = 0;
  #holds = 0;

  constructor(config: SerialSourceConfig, options: SerialSourceOptions) {
    this.#config = config;
    this.#sink = options.sink;
    this.#clock = options.clock;
    this.#monotonic = options.monotonic ?? (() => performance.now());
    this.#log = options.logger?.child({ module: 'serial-source', port: this.label });
    this.#discovery = options.discovery ?? new PortDiscovery();
    this.#binding = options.binding ?? hangupAwareBinding;
    this.#parser = createParser(config.parser);
    this.#splitter = new LineSplitter(this.#parser.maxLineLength);
    this.#supervisor = new PortSupervisor(
      {
        silentAfterMs: config.silentAfter,
        identify: config.identify,
        identifyEveryMs: config.identifyEvery,
        backoff: {
          initialMs: config.reconnect.initial,
          maxMs: config.reconnect.max,
          factor: config.reconnect.factor,
          jitter: config.reconnect.jitter,
        },
      },
      options.random ?? Math.random,
    );
  }

  /** The port as configured, as the state report names it. */
  get label(): string {
    const { port, match } = this.#config;
    if (port !== undefined) return port;
    const serial = match?.serialNumber === undefined ? '' : `:${match.serialNumber}`;
    return `usb:${match?.vendorId}:${match?.productId}${serial}`;
  }

  /** The child device this port's readings belong to (PROTOCOL.md §1). */
  get device(): string {
    return this.#config.device;
  }

  /** From the last `ID` line the device sent (PROTOCOL.md §10). */
  get identity(): DeviceIdentity | undefined {
    return this.#identity;
  }

  /**
   * Keeps the port open while a firmware update owns the line: the silent watchdog is off
   * until every hold is released (see {@link PortSupervisor.hold}). Readings keep flowing
   * to the sink meanwhile. Returns the release function; calling it twice is harmless.
   */
  hold(): () => void {
    this.#holds++;
    this.#supervisor.hold(true, this.#monotonic());
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      if (this.#holds > 0) return;
      this.#supervisor.hold(false, this.#monotonic());
      this.#arm();
    };
  }

  /** Resolves once the first open attempt has finished (or failed); never throws. */
  async start(): Promise<void> {
    const settled = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, START_WAIT_MS);
      this.#settledWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.#apply(this.#supervisor.start(this.#monotonic()));
    await settled;
  }

  async stop(): Promise<void> {
    this.#supervisor.stop();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wakeSettled();
    await this.#opening;
    const port = this.#port;
    this.#port = undefined;
    if (port !== undefined) await closePort(port);
  }

  status(): PortStatus[] {
    const status: PortStatus = {
      path: this.label,
      state: this.#supervisor.state,
      device: this.#config.device,
      lines: this.#lines,
      frames: this.#frames,
      readings: this.#readings,
      badLines: this.#badLines,
      badLinesByReason: { ...this.#badByReason },
      reopens: Math.max(0, this.#supervisor.opens - 1),
    };
    if (this.#resolvedPath !== undefined) status.resolvedPath = this.#resolvedPath;
    if (this.#identity !== undefined) status.identity = { ...this.#identity };
    if (this.#lastFrameAt !== undefined) status.lastFrameAt = this.#lastFrameAt;
    if (this.#identifiedAt !== undefined) status.identifiedAt = this.#identifiedAt;
    const error = this.#supervisor.lastError;
    if (error !== undefined && this.#supervisor.state !== 'open') status.lastError = error;
    return [status];
  }

  /**
   * Lines other than readings (`ID`, `OK`, `ERR`, `LOG`, PROTOCOL.md §10), for the serial
   * flasher. Returns the unsubscribe function.
   */
  onFrame(listener: (frame: SerialLine) => void): () => void {
    this.#frameListeners.add(listener);
    return () => this.#frameListeners.delete(listener);
  }

  /** Writes to the open port; rejects when it is not open. */
  write(data: string | Uint8Array): Promise<void> {
    const port = this.#port;
    if (port === undefined || !port.isOpen) {
      return Promise.reject(new Error(`serial port ${this.label} is not open`));
    }
    return new Promise((resolve, reject) =>
      port.write(data, (err) => (err ? reject(err) : resolve())),
    );
  }

  // --- supervision -----------------------------------------------------------------------

  #handle(event: SupervisorEvent): void {
    this.#apply(this.#supervisor.handle(event, this.#monotonic()));
  }

  #apply(actions: SupervisorAction[]): void {
    const before = this.#supervisor.state;
    for (const action of actions) {
      switch (action.type) {
        case 'resolve':
          void this.#resolve();
          break;
        case 'open':
          this.#opening = this.#open(action.path);
          break;
        case 'close':
          void this.#close();
          break;
        case 'identify':
          this.write(formatIdRequest()).catch((err: Error) =>
            this.#log?.debug({ err: err.message }, 'ID? not written'),
          );
          break;
      }
    }
    this.#logState(before);
    const phase = this.#supervisor.phase;
    if (phase !== 'resolving' && phase !== 'opening') this.#wakeSettled();
    this.#arm();
  }

  #logState(before: string): void {
    const state = this.#supervisor.state;
    if (state === before || this.#log === undefined) return;
    const error = this.#supervisor.lastError;
    this.#log.info({ state, path: this.#resolvedPath, reason: error }, 'serial port state');
  }

  /** One timer, set for the supervisor's next deadline; frames only push deadlines later. */
  #arm(): void {
    const due = this.#supervisor.nextDueAt();
    if (due === undefined) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerDue = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.#timer !== undefined && this.#timerDue <= due) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerDue = Number.POSITIVE_INFINITY;
        this.#apply(this.#supervisor.tick(this.#monotonic()));
      },
      Math.max(0, due - this.#monotonic()),
    );
  }

  #wakeSettled(): void {
    for (const wake of this.#settledWaiters.splice(0)) wake();
  }

  async #resolve(): Promise<void> {
    let path: string | undefined;
    try {
      const { port, match } = this.#config;
      if (port !== undefined) path = await this.#discovery.resolvePath(port);
      else if (match !== undefined) path = (await this.#discovery.find(match))?.path;
    } catch (err) {
      this.#log?.debug({ err: (err as Error).message }, 'port discovery failed');
    }
    this.#resolvedPath = path;
    this.#handle({ type: 'resolved', path });
  }

  async #open(path: string): Promise<void> {
    const { baudRate, dataBits, stopBits, parity } = this.#config;
    let port: SerialPort;
    let error: Error | null;
    try {
      port = new SerialPort({
        path,
        baudRate,
        dataBits,
        stopBits,
        parity,
        autoOpen: false,
        binding: this.#binding,
      } as ConstructorParameters<typeof SerialPort>[0]);
      error = await new Promise<Error | null>((resolve) => port.open(resolve));
    } catch (err) {
      this.#handle({ type: 'open-failed', error: (err as Error).message });
      return;
    }
    if (error !== null) {
      this.#handle({ type: 'open-failed', error: error.message });
      return;
    }
    if (this.#supervisor.phase !== 'opening') {
      await closePort(port); // stopped while opening
      return;
    }
    this.#port = port;
    this.#splitter.reset();
    this.#parser.reset();
    port.on('data', (chunk: Buffer) => this.#onData(port, chunk));
    port.on('error', (err: Error) => this.#log?.debug({ err: err.message }, 'serial port error'));
    port.on('close', (err?: Error | null) => {
      if (this.#port !== port) return;
      this.#port = undefined;
      this.#handle({ type: 'closed', error: err?.message ?? 'port closed' });
    });
    this.#handle({ type: 'opened' });
  }

  async #close(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    if (port !== undefined) await closePort(port);
    this.#handle({ type: 'closed' });
  }

  // --- lines -----------------------------------------------------------------------------

  #onData(port: SerialPort, chunk: Buffer): void {
    if (port !== this.#port) return;
    const lines = this.#splitter.push(chunk);
    if (lines.length === 0) return;
    const nowMs = this.#clock.now();
    const readings: SourceReading[] = [];
    let framed = false;
    let identified = false;
    for (const raw of lines) {
      // PROTOCOL.md §10 tolerates `\r\n`; blank lines are neither data nor errors.
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.length === 0) continue;
      this.#lines++;
      const result = this.#parse(line);
      if (!result.ok) {
        this.#badLines++;
        this.#badByReason[result.reason] = (this.#badByReason[result.reason] ?? 0) + 1;
        continue;
      }
      framed = true;
      this.#frames++;
      if (result.frame !== undefined) {
        if (result.frame.kind === 'id') {
          const { hardware, serial, version } = result.frame;
          this.#identity = { hardware, serial, version };
          identified = true;
        }
        this.#emitFrame(result.frame);
      }
      // Lines that arrive in one chunk would share a millisecond, and points of one device,
      // metric and time overwrite each other in the store: stamp arrivals strictly
      // increasing per port (a clock step back restarts from the clock). A time the device
      // sent itself is kept as it is.
      let time = result.time;
      if (time === undefined) {
        const arrival =
          nowMs > this.#lastArrivalMs || nowMs < this.#lastArrivalMs - 1000
            ? nowMs
            : this.#lastArrivalMs + 1;
        this.#lastArrivalMs = arrival;
        time = arrival / 1000;
      }
      for (const [metric, value] of result.values) {
        const unit = this.#parser.unit(metric);
        const device = this.#config.device;
        readings.push(
          unit === undefined
            ? { device, metric, time, value }
            : { device, metric, time, value, unit },
        );
      }
    }
    if (framed) {
      this.#lastFrameAt = nowMs / 1000;
      if (identified) this.#identifiedAt = nowMs / 1000;
      this.#handle({ type: identified ? 'identified' : 'frame' });
    }
    if (readings.length === 0) return;
    this.#readings += readings.length;
    try {
      this.#sink(readings);
    } catch (err) {
      this.#log?.error({ err }, 'reading sink failed');
    }
  }

  #parse(line: string): ParseResult {
    // The splitter maps bytes to characters one to one; text formats get their UTF-8 back.
    const text =
      this.#parser.type !== 'outpost-line' && hasHighByte(line)
        ? Buffer.from(line, 'latin1').toString('utf8')
        : line;
    return this.#parser.parse(text);
  }

  #emitFrame(frame: SerialLine): void {
    for (const listener of this.#frameListeners) {
      try {
        listener(frame);
      } catch (err) {
        this.#log?.error({ err }, 'frame listener failed');
      }
    }
  }
}

function hasHighByte(line: string): boolean {
  for (let i = 0; i < line.length; i++) if (line.charCodeAt(i) > 0x7f) return true;
  return false;
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
