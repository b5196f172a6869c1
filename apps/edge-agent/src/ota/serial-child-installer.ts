import { open } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import {
  formatFwBegin,
  formatFwChunk,
  formatFwEnd,
  formatIdRequest,
  type SerialLine,
} from '@outpost/protocol/serial-line';
import type { Logger } from 'pino';
import { AgentError } from '../errors.js';
import type { SerialSource } from '../sources/serial-source.js';
import type { SourceConfig } from '../sources/source-config.js';
import type {
  InstalledFirmware,
  Installer,
  InstallOutcome,
  InstallRequest,
  InstallStep,
} from './installer.js';
import {
  DEFAULT_SERIAL_FLASH_CONFIG,
  type FlashAction,
  type FlashEvent,
  SerialFlash,
  type SerialFlashConfig,
} from './serial-flash.js';

/**
 * Installs firmware on child devices attached to serial ports, through the PROTOCOL.md §10
 * bootloader (the protocol itself is in serial-flash.ts). A child is the `device` of a
 * serial source; its firmware is one component (`main` unless told otherwise).
 *
 * While it installs, the port stays with its source: readings keep flowing to the agent
 * (a device sends them between chunks and after its reboot; they are the trial's evidence),
 * the source keeps reopening a port that went away, and its silent watchdog is held off so
 * a quiet reboot does not get the port reopened and the device's `ID` line flushed.
 */

export interface SerialChildInstallerOptions {
  /** The agent's serial sources; each one's `device` is a child this installer serves. */
  sources: readonly SerialSource[];
  /** Components flashed through the bootloader; defaults to `['main']`. */
  components?: readonly string[];
  config?: SerialFlashConfig;
  /** Times chunk timeouts and the trial; defaults to `performance.now`. */
  monotonic?: () => number;
  logger?: Logger;
  /** Largest image read into memory; defaults to 16 MiB. */
  maxImageBytes?: number;
}

const DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024;

/**
 * The child device ids of the gateway's serial sources, in config order, once each: the
 * agent subscribes to their `commands` topics (PROTOCOL.md §4) to receive their offers.
 */
export function childDeviceIds(config: { sources: readonly SourceConfig[] }): string[] {
  const ids = new Set<string>();
  for (const source of config.sources) {
    if (source.kind === 'serial') ids.add(source.serial.device);
  }
  return [...ids];
}

export class SerialChildInstaller implements Installer {
  readonly #sources = new Map<string, SerialSource>();
  readonly #components: ReadonlySet<string>;
  readonly #config: SerialFlashConfig;
  readonly #monotonic: () => number;
  readonly #log: Logger | undefined;
  readonly #maxImageBytes: number;
  /** One update per device at a time: two would interleave their lines on one port. */
  readonly #busy = new Set<string>();

  constructor(options: SerialChildInstallerOptions) {
    this.#log = options.logger?.child({ module: 'serial-child-installer' });
    for (const source of options.sources) {
      if (this.#sources.has(source.device)) {
        this.#log?.warn(
          { deviceId: source.device, port: source.label },
          'device on two serial ports; updates go through the first',
        );
        continue;
      }
      this.#sources.set(source.device, source);
    }
    this.#components = new Set(options.components ?? ['main']);
    this.#config = options.config ?? DEFAULT_SERIAL_FLASH_CONFIG;
    this.#monotonic = options.monotonic ?? (() => performance.now());
    this.#maxImageBytes = options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  }

  handles(deviceId: string, component: string): boolean {
    return this.#components.has(component) && this.#sources.has(deviceId);
  }

  async installed(deviceId: string, component: string): Promise<InstalledFirmware | undefined> {
    if (!this.handles(deviceId, component)) return undefined;
    const source = this.#sources.get(deviceId)!;
    const identity = source.identity;
    // A port that went away may come back with another device on it.
    if (identity === undefined || source.status()[0]?.state === 'missing') return undefined;
    return { hardware: identity.hardware, version: identity.version };
  }

  async install(request: InstallRequest): Promise<InstallOutcome> {
    const { deviceId, component, manifest } = request;
    const source = this.#sources.get(deviceId);
    const version = source?.identity?.version;
    if (source === undefined || !this.handles(deviceId, component)) {
      return { state: 'failed', reason: 'not a serial child of this gateway', version: 'unknown' };
    }
    if (version === undefined) {
      return { state: 'failed', reason: 'the device has not sent its ID', version: 'unknown' };
    }
    const failed = (reason: string): InstallOutcome => ({ state: 'failed', reason, version });
    if (this.#busy.has(deviceId)) return failed('an update of this device is already running');
    if (request.signal.aborted) return failed('aborted before the transfer');
    if (source.status()[0]?.state === 'missing') return failed('serial port not open');

    this.#busy.add(deviceId);
    try {
      let image: Uint8Array;
      try {
        image = await this.#readImage(request.artifactPath, manifest.size);
      } catch (err) {
        return failed(`staged image: ${(err as Error).message}`);
      }
      const log = this.#log?.child({ deviceId, component, target: manifest.version });
      log?.info({ from: version, size: image.length, port: source.label }, 'serial update');
      const outcome = await this.#run(source, request, image, version);
      const reason = outcome.state === 'succeeded' ? undefined : outcome.reason;
      log?.info({ state: outcome.state, reason, running: outcome.version }, 'serial update ended');
      return outcome;
    } finally {
      this.#busy.delete(deviceId);
    }
  }

  /** The whole image, refused when it is not the size the manifest says. */
  async #readImage(path: string, size: number): Promise<Uint8Array> {
    if (size > this.#maxImageBytes) {
      throw new AgentError(
        'invalid',
        'image_too_large',
        `${size} bytes, more than the ${this.#maxImageBytes} a serial update takes`,
      );
    }
    const file = await open(path, 'r');
    try {
      // One byte more than expected tells a longer file from the right one.
      const buffer = new Uint8Array(size + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await file.read(buffer, length, buffer.length - length);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length === buffer.length) break;
      }
      if (length !== size) {
        const found = length > size ? 'more' : String(length);
        throw new AgentError('invalid', 'image_size', `expected ${size} bytes, found ${found}`);
      }
      return buffer.subarray(0, size);
    } finally {
      await file.close();
    }
  }

  #run(
    source: SerialSource,
    request: InstallRequest,
    image: Uint8Array,
    fromVersion: string,
  ): Promise<InstallOutcome> {
    const { manifest, signal } = request;
    const log = this.#log?.child({ deviceId: request.deviceId });
    const flash = new SerialFlash(
      { size: image.length, sha256: manifest.sha256, version: manifest.version, fromVersion },
      this.#config,
    );
    const readings = () => source.status()[0]?.readings ?? 0;

    return new Promise((resolve) => {
      const release = source.hold();
      let seen = readings();
      let timer: NodeJS.Timeout | undefined;
      let finished = false;

      const write = (line: string) => {
        // A lost write is a chunk that goes unanswered: its timeout sends it again.
        source.write(line).catch((err: Error) => log?.debug({ err: err.message }, 'FW write'));
      };
      const report = (step: InstallStep) => {
        try {
          request.report(step);
        } catch (err) {
          log?.error({ err }, 'OTA progress report failed');
        }
      };
      const finish = (outcome: InstallOutcome) => {
        finished = true;
        if (timer !== undefined) clearTimeout(timer);
        unsubscribe();
        signal.removeEventListener('abort', onAbort);
        release();
        resolve(outcome);
      };
      const run = (actions: FlashAction[]) => {
        for (const action of actions) {
          switch (action.type) {
            case 'begin':
              write(formatFwBegin(image.length, manifest.sha256));
              break;
            case 'chunk': {
              const end = action.offset + action.length;
              write(formatFwChunk(action.offset, image.subarray(action.offset, end)));
              break;
            }
            case 'end':
              write(formatFwEnd());
              break;
            case 'identify':
              write(formatIdRequest());
              break;
            case 'report':
              report(action.step);
              break;
            case 'done':
              finish(action.outcome);
              return;
          }
        }
        arm();
      };
      const feed = (event: FlashEvent) => {
        if (finished) return;
        const now = this.#monotonic();
        // Readings reach the sink, not the frame listeners: count them from the source.
        const total = readings();
        if (total > seen) {
          run(flash.handle({ type: 'readings', count: total - seen }, now));
          seen = total;
        }
        if (!finished) run(flash.handle(event, now));
      };
      const arm = () => {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        const due = flash.nextDueAt();
        if (due === undefined || finished) return;
        timer = setTimeout(() => feed({ type: 'tick' }), Math.max(0, due - this.#monotonic()));
      };
      const onAbort = () => feed({ type: 'abort' });
      const unsubscribe = source.onFrame((line: SerialLine) => feed({ type: 'line', line }));
      signal.addEventListener('abort', onAbort, { once: true });
      run(flash.start(this.#monotonic()));
    });
  }
}
