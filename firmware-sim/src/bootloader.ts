import {
  type DeviceIdentity,
  type FwErrorReason,
  formatErr,
  formatHealthRevertLog,
  formatId,
  formatOk,
  type SerialLine,
} from '@outpost/protocol/serial-line';
import { readImageHeader } from './firmware-image.js';

/**
 * The device side of the PROTOCOL.md §10 firmware update, as a state machine with no I/O:
 * the caller passes parsed lines and the time, and writes the replies it gets back.
 *
 * - `FW BEGIN <size> <sha256>` → `OK <offset>`: the offset to continue from. 0 for a new
 *   image; the bytes already staged when the same size and sha256 are announced again, so
 *   an interrupted transfer resumes.
 * - `FW CHUNK <offset> ...` → `OK <offset>` echoing the chunk's offset. A chunk must start
 *   at or before the bytes received so far: a repeated chunk is written and acknowledged
 *   again (idempotent), a gap is `ERR <offset> offset`.
 * - `FW END` → `OK <size>`, then the device is silent for `rebootMs` and introduces itself
 *   with `ID` and the version in the image header (a dual-bank device: the previous version
 *   stays in the other bank). With `failHealth`, it gives up the new version `afterMs`
 *   later: `LOG health check failed, reverted to <old>` and `ID ... <old>`.
 */

/** `verify`: END fails its image check. `write`: the chunk covering `atOffset` fails. */
export type FlashFailure =
  | { kind: 'verify'; times?: number }
  | { kind: 'write'; atOffset: number; times?: number };

export interface HealthFailure {
  afterMs: number;
  times?: number;
}

/** Flash behaviour a scenario may change while the device runs; `null` clears a failure. */
export interface FlashSettings {
  slowMs?: number;
  failFlash?: FlashFailure | null;
  failHealth?: HealthFailure | null;
}

export interface BootloaderOptions {
  /** Hex SHA-256 of the bytes: injected so this module needs no crypto library. */
  sha256: (bytes: Uint8Array) => string;
  /** Largest image the device can stage; defaults to 1 MiB. */
  maxImageBytes?: number;
  /** How long each chunk takes to write before its ack. */
  slowMs?: number;
  /** How long the device is silent while it reboots; defaults to 200 ms. */
  rebootMs?: number;
  /** Flash failures; each fails `times` times (default: every time). */
  failFlash?: FlashFailure;
  /** After a reboot into new firmware, the health check fails `afterMs` later. */
  failHealth?: HealthFailure;
}

export interface BootloaderReply {
  lines: string[];
  /** Wait this long before writing the lines (a slow flash). */
  delayMs: number;
}

export type BootloaderPhase = 'idle' | 'receiving' | 'rebooting' | 'trial';

export interface BootloaderStats {
  begins: number;
  chunksOk: number;
  /** `ERR` replies of any reason. */
  errors: number;
  updates: number;
  reverts: number;
  lastError: string | undefined;
}

export const DEFAULT_MAX_IMAGE_BYTES = 1024 * 1024;
export const DEFAULT_REBOOT_MS = 200;

interface Transfer {
  size: number;
  sha256: string;
  image: Uint8Array;
  received: number;
}

type FwLine = Extract<SerialLine, { kind: 'id_request' | 'fw_begin' | 'fw_chunk' | 'fw_end' }>;

export class Bootloader {
  #options: BootloaderOptions;
  #identity: DeviceIdentity;
  #previousVersion: string | undefined;
  #transfer: Transfer | undefined;
  #rebootUntil: number | undefined;
  #revertAt: number | undefined;
  #flashFailures = 0;
  #healthFailures = 0;
  readonly #stats: BootloaderStats = {
    begins: 0,
    chunksOk: 0,
    errors: 0,
    updates: 0,
    reverts: 0,
    lastError: undefined,
  };

  constructor(identity: DeviceIdentity, options: BootloaderOptions) {
    this.#identity = { ...identity };
    this.#options = options;
  }

  /** Changes flash behaviour; a new failure counts its `times` from zero. */
  configure(settings: FlashSettings): void {
    const options = { ...this.#options };
    if (settings.slowMs !== undefined) options.slowMs = settings.slowMs;
    if (settings.failFlash !== undefined) {
      options.failFlash = settings.failFlash ?? undefined;
      this.#flashFailures = 0;
    }
    if (settings.failHealth !== undefined) {
      options.failHealth = settings.failHealth ?? undefined;
      this.#healthFailures = 0;
    }
    this.#options = options;
  }

  /** The firmware running now. */
  get identity(): DeviceIdentity {
    return { ...this.#identity };
  }

  get phase(): BootloaderPhase {
    if (this.#rebootUntil !== undefined) return 'rebooting';
    if (this.#revertAt !== undefined) return 'trial';
    return this.#transfer === undefined ? 'idle' : 'receiving';
  }

  /** Bytes staged so far of the image being received. */
  get received(): number {
    return this.#transfer?.received ?? 0;
  }

  get stats(): BootloaderStats {
    return { ...this.#stats };
  }

  /** While rebooting the device neither hears nor says anything. */
  isRebooting(nowMs: number): boolean {
    return this.#rebootUntil !== undefined && nowMs < this.#rebootUntil;
  }

  /** When {@link tick} has something to do next. */
  nextDueMs(): number | undefined {
    return this.#rebootUntil ?? this.#revertAt;
  }

  /**
   * Lines that are due by `nowMs`: the `ID` a rebooted device sends, and the revert of a
   * failed health check.
   */
  tick(nowMs: number): string[] {
    const lines: string[] = [];
    if (this.#rebootUntil !== undefined && nowMs >= this.#rebootUntil) {
      const bootedAt = this.#rebootUntil;
      this.#rebootUntil = undefined;
      lines.push(formatId(this.#identity));
      const health = this.#options.failHealth;
      if (health !== undefined && this.#healthFailures < (health.times ?? Infinity)) {
        this.#revertAt = bootedAt + health.afterMs;
      }
    }
    if (this.#revertAt !== undefined && nowMs >= this.#revertAt) {
      this.#revertAt = undefined;
      this.#healthFailures++;
      this.#stats.reverts++;
      this.#identity = { ...this.#identity, version: this.#previousVersion! };
      this.#previousVersion = undefined;
      lines.push(formatHealthRevertLog(this.#identity.version), formatId(this.#identity));
    }
    return lines;
  }

  /**
   * Answers `ID?` and the `FW` lines, and a `FW CHUNK` that failed to parse but named its
   * offset. Anything else, or anything while rebooting, gets no reply (undefined).
   */
  handle(line: SerialLine, nowMs: number): BootloaderReply | undefined {
    if (this.isRebooting(nowMs)) return undefined;
    if (line.kind === 'invalid') {
      if (line.offset === undefined) return undefined;
      const reason = line.reason === 'crc' ? 'crc' : 'syntax';
      return this.#transfer === undefined
        ? this.#error(line.offset, 'state')
        : this.#error(line.offset, reason);
    }
    if (!isFwLine(line)) return undefined;
    switch (line.kind) {
      case 'id_request':
        return reply([formatId(this.#identity)]);
      case 'fw_begin':
        return this.#begin(line.size, line.sha256);
      case 'fw_chunk':
        return this.#chunk(line.offset, line.data);
      case 'fw_end':
        return this.#end(nowMs);
    }
  }

  #begin(size: number, sha256: string): BootloaderReply {
    this.#stats.begins++;
    const max = this.#options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
    if (size > max) {
      this.#transfer = undefined;
      return this.#error(0, 'too_large');
    }
    const current = this.#transfer;
    if (current !== undefined && current.size === size && current.sha256 === sha256) {
      return reply([formatOk(current.received)]);
    }
    this.#transfer = { size, sha256, image: new Uint8Array(size), received: 0 };
    return reply([formatOk(0)]);
  }

  #chunk(offset: number, data: Uint8Array): BootloaderReply {
    const transfer = this.#transfer;
    if (transfer === undefined) return this.#error(offset, 'state');
    if (offset > transfer.received) return this.#error(offset, 'offset');
    const end = offset + data.length;
    if (end > transfer.size) return this.#error(offset, 'size');
    const failure = this.#options.failFlash;
    if (
      failure?.kind === 'write' &&
      offset <= failure.atOffset &&
      failure.atOffset < end &&
      this.#flashFailures < (failure.times ?? Infinity)
    ) {
      this.#flashFailures++;
      return this.#error(offset, 'flash', this.#options.slowMs);
    }
    transfer.image.set(data, offset);
    transfer.received = Math.max(transfer.received, end);
    this.#stats.chunksOk++;
    return reply([formatOk(offset)], this.#options.slowMs);
  }

  #end(nowMs: number): BootloaderReply {
    const transfer = this.#transfer;
    if (transfer === undefined) return this.#error(0, 'state');
    if (transfer.received !== transfer.size) return this.#error(transfer.received, 'size');
    // A failed check discards the staged image: the next attempt starts with a new BEGIN.
    this.#transfer = undefined;
    if (this.#options.sha256(transfer.image) !== transfer.sha256) {
      return this.#error(transfer.size, 'sha256');
    }
    const failure = this.#options.failFlash;
    if (failure?.kind === 'verify' && this.#flashFailures < (failure.times ?? Infinity)) {
      this.#flashFailures++;
      return this.#error(transfer.size, 'verify');
    }
    const header = readImageHeader(transfer.image);
    if (header === undefined) return this.#error(transfer.size, 'image');
    if (header.hardware !== this.#identity.hardware) {
      return this.#error(transfer.size, 'hardware');
    }
    this.#stats.updates++;
    this.#previousVersion = this.#identity.version;
    this.#identity = { ...this.#identity, version: header.version };
    this.#revertAt = undefined;
    this.#rebootUntil = nowMs + (this.#options.rebootMs ?? DEFAULT_REBOOT_MS);
    return reply([formatOk(transfer.size)]);
  }

  #error(offset: number, reason: FwErrorReason, delayMs = 0): BootloaderReply {
    this.#stats.errors++;
    this.#stats.lastError = reason;
    return reply([formatErr(offset, reason)], delayMs);
  }
}

function isFwLine(line: SerialLine): line is FwLine {
  return (
    line.kind === 'id_request' ||
    line.kind === 'fw_begin' ||
    line.kind === 'fw_chunk' ||
    line.kind === 'fw_end'
  );
}

function reply(lines: string[], delayMs = 0): BootloaderReply {
  return { lines, delayMs };
}
