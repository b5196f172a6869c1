import { durationSchema } from '@outpost/protocol/duration';
import { MAX_FW_CHUNK_BYTES, type SerialLine } from '@outpost/protocol/serial-line';
import { z } from 'zod';
import type { InstallOutcome, InstallStep } from './installer.js';

/**
 * One firmware update of a serial child device through its PROTOCOL.md §10 bootloader, as
 * a pure state machine: it is told what the device said and what time it is, and answers
 * with what to write and what to report. serial-child-installer.ts does the I/O.
 *
 *   begin ──OK <offset>──▶ chunk ⟲ (OK <offset> each) ──all acked──▶ end ──OK <size>──▶
 *   rebooting ──ID <new version>──▶ trial ──window over, readings seen──▶ succeeded
 *
 * - `FW BEGIN` answers the offset to continue from, so an interrupted transfer resumes.
 * - One chunk is in flight at a time (the device handles one line at a time anyway). A
 *   chunk answered `ERR` (`crc`, `flash`, ...) or not at all is sent again, at most
 *   `maxAttempts` times. A gap (`ERR offset`) or a device that lost the transfer (`state`,
 *   `size`) is asked `FW BEGIN` again for its offset. Replies to an earlier chunk, which a
 *   slow device may send after its timeout, name another offset and are ignored.
 * - The device keeps running its old version until `FW END` verifies the image (dual bank),
 *   so every failure before that leaves it on the old version.
 * - After `OK <size>` the device reboots and says `ID`; its version must be the manifest's.
 *   During the trial window it must send readings and must not revert (it says
 *   `LOG health check failed, reverted to <old>` and `ID ... <old>`).
 */

export const serialFlashConfigSchema = z.strictObject({
  /** Image bytes per `FW CHUNK`: 512 keeps the line at 708 of the 1024 bytes §10 allows. */
  chunkBytes: z.int().min(16).max(MAX_FW_CHUNK_BYTES).default(MAX_FW_CHUNK_BYTES),
  /** Wait for the answer to `FW BEGIN` and to each chunk; raise it for a slow link. */
  ackTimeout: durationSchema.default(5_000),
  /** Wait for the answer to `FW END`: the device checks the whole image first. */
  endTimeout: durationSchema.default(30_000),
  /** Sends of one `FW BEGIN`, chunk or `FW END` before giving up; also bounds re-BEGINs. */
  maxAttempts: z.int().min(1).max(20).default(5),
  /** Wait for the `ID` line after the reboot. */
  rebootTimeout: durationSchema.default(60_000),
  /** Ask `ID?` this often while waiting, for devices that do not introduce themselves. */
  identifyEvery: durationSchema.default(5_000),
  /** The health window: the new version must send readings and not revert. */
  trial: durationSchema.default(30_000),
  /** Readings (values) the device must send during the trial. */
  minTrialReadings: z.int().min(0).max(1_000_000).default(1),
  /** `installing` progress is reported at most this often. */
  progressEvery: durationSchema.default(5_000),
});
export type SerialFlashConfig = z.output<typeof serialFlashConfigSchema>;

export const DEFAULT_SERIAL_FLASH_CONFIG: SerialFlashConfig = Object.freeze(
  serialFlashConfigSchema.parse({}),
);

export interface FlashTarget {
  size: number;
  sha256: string;
  /** The manifest's version: what the device must report after the reboot. */
  version: string;
  /** What the device runs before the update. */
  fromVersion: string;
}

export type FlashAction =
  | { type: 'begin' }
  | { type: 'chunk'; offset: number; length: number }
  | { type: 'end' }
  | { type: 'identify' }
  | { type: 'report'; step: InstallStep }
  | { type: 'done'; outcome: InstallOutcome };

export type FlashEvent =
  /** A parsed line other than a reading: `OK`, `ERR`, `ID`, `LOG`. */
  | { type: 'line'; line: SerialLine }
  /** Readings (values) that arrived since the last event. */
  | { type: 'readings'; count: number }
  /** The time given with it may have reached {@link SerialFlash.nextDueAt}. */
  | { type: 'tick' }
  /** The agent is shutting down. */
  | { type: 'abort' };

export type FlashPhase = 'idle' | 'begin' | 'chunk' | 'end' | 'rebooting' | 'trial' | 'done';

/** `ERR` reasons after which the same image cannot succeed (PROTOCOL.md §10). */
const FATAL_REASONS = new Set(['too_large', 'sha256', 'verify', 'image', 'hardware']);
/** `ERR` reasons that mean the device holds fewer bytes than we think: ask its offset. */
const RESUME_REASONS = new Set(['offset', 'state', 'size']);

export class SerialFlash {
  readonly #target: FlashTarget;
  readonly #config: SerialFlashConfig;
  #phase: FlashPhase = 'idle';
  /** Bytes the device acknowledged, in order: the next chunk starts here. */
  #acked = 0;
  #inFlight = 0;
  #attempts = 0;
  #restarts = 0;
  #deadline: number | undefined;
  #identifyAt: number | undefined;
  #lastReportAt = Number.NEGATIVE_INFINITY;
  /** `FW END` was answered `OK <size>`; false when it timed out and we only wait for `ID`. */
  #endConfirmed = false;
  #runningVersion: string;
  #trialReadings = 0;
  #outcome: InstallOutcome | undefined;

  constructor(target: FlashTarget, config: SerialFlashConfig = DEFAULT_SERIAL_FLASH_CONFIG) {
    this.#target = target;
    this.#config = config;
    this.#runningVersion = target.fromVersion;
  }

  get phase(): FlashPhase {
    return this.#phase;
  }

  /** Bytes the device has acknowledged so far. */
  get acked(): number {
    return this.#acked;
  }

  get outcome(): InstallOutcome | undefined {
    return this.#outcome;
  }

  /** When a `tick` has something to do, or undefined. */
  nextDueAt(): number | undefined {
    if (this.#phase === 'done' || this.#phase === 'idle') return undefined;
    if (this.#identifyAt === undefined) return this.#deadline;
    if (this.#deadline === undefined) return this.#identifyAt;
    return Math.min(this.#deadline, this.#identifyAt);
  }

  start(now: number): FlashAction[] {
    if (this.#phase !== 'idle') return [];
    const { size } = this.#target;
    return [
      this.#report({ state: 'installing', detail: `FW BEGIN, ${size} bytes` }, now),
      ...this.#begin(now),
    ];
  }

  handle(event: FlashEvent, now: number): FlashAction[] {
    if (this.#phase === 'idle' || this.#phase === 'done') return [];
    switch (event.type) {
      case 'abort':
        return this.#abort();
      case 'readings':
        if (this.#phase === 'trial') this.#trialReadings += event.count;
        return [];
      case 'tick':
        return this.#tick(now);
      case 'line':
        return this.#line(event.line, now);
    }
  }

  // --- transfer --------------------------------------------------------------------------

  #begin(now: number): FlashAction[] {
    this.#phase = 'begin';
    this.#attempts = 1;
    this.#deadline = now + this.#config.ackTimeout;
    return [{ type: 'begin' }];
  }

  /** Asks the device again where it stands, after it lost or refused part of the transfer. */
  #rebegin(now: number, why: string): FlashAction[] {
    this.#restarts++;
    if (this.#restarts > this.#config.maxAttempts) {
      return this.#fail(`transfer restarted ${this.#config.maxAttempts} times, last: ${why}`);
    }
    return this.#begin(now);
  }

  #sendChunk(now: number): FlashAction[] {
    const { size } = this.#target;
    if (this.#acked >= size) return this.#end(now);
    this.#phase = 'chunk';
    this.#inFlight = this.#acked;
    this.#deadline = now + this.#config.ackTimeout;
    const length = Math.min(this.#config.chunkBytes, size - this.#acked);
    return [{ type: 'chunk', offset: this.#inFlight, length }];
  }

  #end(now: number): FlashAction[] {
    this.#phase = 'end';
    this.#attempts = 1;
    this.#deadline = now + this.#config.endTimeout;
    return [{ type: 'end' }];
  }

  #progress(now: number): FlashAction[] {
    if (now - this.#lastReportAt < this.#config.progressEvery) return [];
    return [this.#report({ state: 'installing', detail: this.#bytes() }, now)];
  }

  #bytes(): string {
    return `${this.#acked} of ${this.#target.size} bytes`;
  }

  #line(line: SerialLine, now: number): FlashAction[] {
    switch (this.#phase) {
      case 'begin':
        return this.#onBeginReply(line, now);
      case 'chunk':
        return this.#onChunkReply(line, now);
      case 'end':
        return this.#onEndReply(line, now);
      case 'rebooting':
        return this.#onBootLine(line, now);
      case 'trial':
        return this.#onTrialLine(line);
      default:
        return [];
    }
  }

  #onBeginReply(line: SerialLine, now: number): FlashAction[] {
    const { size } = this.#target;
    if (line.kind === 'err') {
      if (FATAL_REASONS.has(line.reason))
        return this.#fail(`device refused FW BEGIN: ${line.reason}`);
      return this.#retry(`FW BEGIN: ${line.reason}`, () => this.#begin(now));
    }
    if (line.kind !== 'ok') return [];
    // An offset past the image cannot be a resume point; anything up to it is one (a stale
    // chunk ack taken for the answer only makes us resend bytes the device already has).
    if (line.offset > size)
      return this.#fail(`device answered FW BEGIN with offset ${line.offset}`);
    const resumed = line.offset > 0 && line.offset !== this.#acked;
    this.#acked = line.offset;
    const report = resumed
      ? [this.#report({ state: 'installing', detail: `resuming at ${this.#bytes()}` }, now)]
      : [];
    return [...report, ...this.#startChunks(now)];
  }

  #startChunks(now: number): FlashAction[] {
    this.#attempts = 1;
    return this.#sendChunk(now);
  }

  #onChunkReply(line: SerialLine, now: number): FlashAction[] {
    if (line.kind !== 'ok' && line.kind !== 'err') return [];
    if (line.offset !== this.#inFlight) return []; // the answer to an earlier send
    if (line.kind === 'ok') {
      const length = Math.min(this.#config.chunkBytes, this.#target.size - this.#inFlight);
      this.#acked = this.#inFlight + length;
      this.#attempts = 1;
      return [...this.#progress(now), ...this.#sendChunk(now)];
    }
    if (RESUME_REASONS.has(line.reason)) {
      return this.#rebegin(now, `chunk at ${line.offset}: ${line.reason}`);
    }
    return this.#retry(`chunk at ${line.offset}: ${line.reason}`, () => this.#sendChunk(now));
  }

  #onEndReply(line: SerialLine, now: number): FlashAction[] {
    const { size, version } = this.#target;
    if (line.kind === 'id' && line.version === version) {
      // The answer to END was lost but the device is already back with the new version.
      return [...this.#rebooting(now), ...this.#onBootLine(line, now)];
    }
    if (line.kind === 'err') {
      if (FATAL_REASONS.has(line.reason)) {
        return this.#fail(`device refused the image: ${line.reason}`);
      }
      if (RESUME_REASONS.has(line.reason)) return this.#rebegin(now, `FW END: ${line.reason}`);
      // `flash`, `syntax` or a reason we do not know: END again.
      return this.#retry(`FW END: ${line.reason}`, () => this.#end(now));
    }
    if (line.kind !== 'ok' || line.offset !== size) return [];
    this.#endConfirmed = true;
    return this.#rebooting(now);
  }

  #rebooting(now: number): FlashAction[] {
    this.#phase = 'rebooting';
    this.#deadline = now + this.#config.rebootTimeout;
    this.#identifyAt =
      this.#config.identifyEvery > 0 ? now + this.#config.identifyEvery : undefined;
    const detail = this.#endConfirmed ? 'image verified' : 'no answer to FW END';
    return [this.#report({ state: 'rebooting', detail }, now)];
  }

  /**
   * Sends the step again, or fails once `maxAttempts` sends went unanswered or refused.
   * `again` sends it and restarts its deadline.
   */
  #retry(why: string, again: () => FlashAction[]): FlashAction[] {
    if (this.#attempts >= this.#config.maxAttempts) {
      return this.#fail(`${why} after ${this.#attempts} attempts`);
    }
    const attempts = this.#attempts + 1;
    const actions = again();
    this.#attempts = attempts;
    return actions;
  }

  // --- after FW END ----------------------------------------------------------------------

  #onBootLine(line: SerialLine, now: number): FlashAction[] {
    if (line.kind === 'log' && line.revertedTo !== undefined) {
      return this.#finish({
        state: 'rolled_back',
        reason: `device reverted to ${line.revertedTo} before the trial`,
        version: line.revertedTo,
      });
    }
    if (line.kind !== 'id') return [];
    this.#runningVersion = line.version;
    const { version, fromVersion } = this.#target;
    if (line.version === version) {
      this.#phase = 'trial';
      this.#deadline = now + this.#config.trial;
      this.#identifyAt = undefined;
      this.#trialReadings = 0;
      return [this.#report({ state: 'trial', detail: `running ${version}` }, now)];
    }
    const reason =
      !this.#endConfirmed && line.version === fromVersion
        ? `no answer to FW END; the device still runs ${fromVersion}`
        : `device booted ${line.version}, expected ${version}`;
    return this.#finish({ state: 'failed', reason, version: line.version });
  }

  #onTrialLine(line: SerialLine): FlashAction[] {
    if (line.kind === 'log' && line.revertedTo !== undefined) {
      return this.#finish({
        state: 'rolled_back',
        reason: `health check failed on the device, reverted to ${line.revertedTo}`,
        version: line.revertedTo,
      });
    }
    if (line.kind === 'id' && line.version !== this.#target.version) {
      return this.#finish({
        state: 'rolled_back',
        reason: `device went back to ${line.version} during the trial`,
        version: line.version,
      });
    }
    return [];
  }

  // --- time ------------------------------------------------------------------------------

  #tick(now: number): FlashAction[] {
    const actions: FlashAction[] = [];
    if (this.#identifyAt !== undefined && now >= this.#identifyAt) {
      this.#identifyAt = now + this.#config.identifyEvery;
      actions.push({ type: 'identify' });
    }
    if (this.#deadline === undefined || now < this.#deadline) return actions;
    switch (this.#phase) {
      case 'begin':
        return this.#retry('FW BEGIN: no answer', () => this.#begin(now));
      case 'chunk':
        return this.#retry(`chunk at ${this.#inFlight}: no answer`, () => this.#sendChunk(now));
      case 'end':
        // The device may have verified the image and rebooted with the answer lost: only
        // its `ID` can tell, so wait for it rather than send END to a device that moved on.
        return [...this.#rebooting(now), { type: 'identify' }];
      case 'rebooting': {
        const s = Math.round(this.#config.rebootTimeout / 1000);
        // After `OK <size>` the device switched banks; without it, it most likely did not.
        const version = this.#endConfirmed ? this.#target.version : this.#target.fromVersion;
        return this.#finish({
          state: 'failed',
          reason: `no ID within ${s}s after FW END; version not confirmed`,
          version,
        });
      }
      case 'trial': {
        if (this.#trialReadings >= this.#config.minTrialReadings) {
          return this.#finish({ state: 'succeeded', version: this.#target.version });
        }
        // §10 has no command to make a device go back: it keeps running the new version.
        const s = Math.round(this.#config.trial / 1000);
        return this.#finish({
          state: 'failed',
          reason: `${this.#trialReadings} readings in the ${s}s trial, ${this.#config.minTrialReadings} needed`,
          version: this.#target.version,
        });
      }
      default:
        return actions;
    }
  }

  #abort(): FlashAction[] {
    switch (this.#phase) {
      case 'begin':
      case 'chunk':
        // No FW END was sent: the bootloader keeps the old bank, and the staged bytes for
        // the next BEGIN of the same image.
        return this.#fail(`aborted at ${this.#bytes()}`);
      case 'end':
        return this.#finish({
          state: 'failed',
          reason: 'aborted while the device verified the image; version not confirmed',
          version: this.#target.fromVersion,
        });
      case 'rebooting':
      case 'trial': {
        // `failed` although the device may run the new version: its health is unknown, and
        // the updater asks `installed()` again after the restart.
        const version =
          this.#phase === 'trial' || !this.#endConfirmed
            ? this.#runningVersion
            : this.#target.version;
        return this.#finish({
          state: 'failed',
          reason: `aborted during ${this.#phase}; the device runs ${version}, not confirmed`,
          version,
        });
      }
      default:
        return [];
    }
  }

  // --- outcome ---------------------------------------------------------------------------

  #report(step: InstallStep, now: number): FlashAction {
    if (step.state === 'installing') this.#lastReportAt = now;
    return { type: 'report', step };
  }

  /** Ends with the device on the version it ran before: nothing was installed. */
  #fail(reason: string): FlashAction[] {
    return this.#finish({ state: 'failed', reason, version: this.#target.fromVersion });
  }

  #finish(outcome: InstallOutcome): FlashAction[] {
    this.#phase = 'done';
    this.#deadline = undefined;
    this.#identifyAt = undefined;
    this.#outcome = outcome;
    return [{ type: 'done', outcome }];
  }
}
