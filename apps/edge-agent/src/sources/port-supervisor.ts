import type { PortState } from '@outpost/protocol/state';

/**
 * The life of one serial port as a pure state machine: it is told what happened (events)
 * and when (a monotonic clock in ms), and answers with what to do next (actions). The
 * adapter (serial-source.ts) does the I/O and calls {@link PortSupervisor.tick} at
 * {@link PortSupervisor.nextDueAt}. It never gives up: a port that is missing, fails to
 * open, goes away or falls silent is retried with capped exponential backoff and jitter.
 *
 *   resolving ──found──▶ opening ──opened──▶ open ──no frame for silentAfter──▶ closing
 *       ▲  └─not found─┐    └──failed──┐      └──closed (unplug)──┐                 │
 *       │              ▼               ▼                           ▼                 ▼
 *       └──────────────────────────── waiting (backoff) ◀──────────────────── closed
 *
 * Reported state (PROTOCOL.md §6): `open` while open and framing; `silent` from the
 * watchdog firing until a valid frame arrives again (through the reopen); `missing` when
 * the port is not there, cannot be opened, or went away.
 */

export interface BackoffConfig {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0..1: each delay is shortened by up to this fraction, at random. */
  jitter: number;
}

export interface SupervisorConfig {
  /** No valid frame for this long → `silent`, close and reopen; 0 turns the watchdog off. */
  silentAfterMs: number;
  /** Send `ID?` after each open (PROTOCOL.md §10). */
  identify: boolean;
  /** Resend `ID?` this often until an `ID` line arrives. */
  identifyEveryMs: number;
  backoff: BackoffConfig;
}

export type SupervisorEvent =
  | { type: 'resolved'; path: string | undefined }
  | { type: 'opened' }
  | { type: 'open-failed'; error: string }
  /** A valid frame (a reading or any well-formed line). */
  | { type: 'frame' }
  /** An `ID` line answered `ID?`. */
  | { type: 'identified' }
  /** The port closed: after a `close` action, or on its own (unplugged). */
  | { type: 'closed'; error?: string };

export type SupervisorAction =
  | { type: 'resolve' }
  | { type: 'open'; path: string }
  | { type: 'close'; reason: 'silent' | 'stop' }
  | { type: 'identify' };

export type SupervisorPhase =
  | 'idle'
  | 'resolving'
  | 'opening'
  | 'open'
  | 'closing'
  | 'waiting'
  | 'stopped';

/** Capped exponential backoff: `min(max, initial·factor^attempt)`, less up to `jitter` of it. */
export function backoffDelay(config: BackoffConfig, attempt: number, random: number): number {
  const exponent = Math.min(attempt, 64);
  const base = Math.min(config.maxMs, config.initialMs * config.factor ** exponent);
  return Math.max(0, base * (1 - config.jitter * Math.min(Math.max(random, 0), 1)));
}

export class PortSupervisor {
  readonly #config: SupervisorConfig;
  readonly #random: () => number;
  #phase: SupervisorPhase = 'idle';
  #state: PortState = 'missing';
  #attempt = 0;
  #retryAt: number | undefined;
  #openedAt = 0;
  #lastFrameAt: number | undefined;
  #identified = false;
  #lastIdentifyAt = 0;
  #opens = 0;
  #lastError: string | undefined;
  #held = false;
  /** The watchdog counts quiet time from here after a hold ends. */
  #releasedAt: number | undefined;

  constructor(config: SupervisorConfig, random: () => number) {
    this.#config = config;
    this.#random = random;
  }

  get phase(): SupervisorPhase {
    return this.#phase;
  }

  /** PROTOCOL.md §6 port state. */
  get state(): PortState {
    return this.#state;
  }

  /** Successful opens so far; every one after the first is a reopen. */
  get opens(): number {
    return this.#opens;
  }

  /** Failed attempts since the last valid frame; the backoff exponent. */
  get attempt(): number {
    return this.#attempt;
  }

  get retryAt(): number | undefined {
    return this.#retryAt;
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** A firmware update owns the line (serial-child-installer.ts). */
  get held(): boolean {
    return this.#held;
  }

  /**
   * While held the watchdog does not close a quiet port: a device flashing its image or
   * rebooting may say nothing for longer than `silentAfter`, and a reopen would flush the
   * `ID` line it says when it is back (opening discards buffered input). Opening, `ID?`
   * and backoff go on as usual. The quiet time is counted afresh from the release.
   */
  hold(held: boolean, now: number): void {
    if (this.#held && !held) this.#releasedAt = now;
    this.#held = held;
  }

  start(_now: number): SupervisorAction[] {
    if (this.#phase !== 'idle') return [];
    this.#phase = 'resolving';
    return [{ type: 'resolve' }];
  }

  stop(): SupervisorAction[] {
    const wasOpen = this.#phase === 'open' || this.#phase === 'opening';
    this.#phase = 'stopped';
    this.#retryAt = undefined;
    return wasOpen ? [{ type: 'close', reason: 'stop' }] : [];
  }

  handle(event: SupervisorEvent, now: number): SupervisorAction[] {
    switch (event.type) {
      case 'resolved':
        if (this.#phase !== 'resolving') return [];
        if (event.path === undefined) {
          this.#missing('port not found');
          return this.#retry(now);
        }
        this.#phase = 'opening';
        return [{ type: 'open', path: event.path }];
      case 'opened':
        if (this.#phase !== 'opening') return [];
        this.#phase = 'open';
        this.#opens++;
        this.#openedAt = now;
        this.#lastFrameAt = undefined;
        this.#identified = false;
        this.#lastIdentifyAt = now;
        // After the watchdog fired the port stays `silent` until it frames again.
        if (this.#state === 'missing') this.#state = 'open';
        return this.#config.identify ? [{ type: 'identify' }] : [];
      case 'open-failed':
        if (this.#phase !== 'opening') return [];
        this.#missing(event.error);
        return this.#retry(now);
      case 'identified':
        this.#identified = true;
        return this.handle({ type: 'frame' }, now);
      case 'frame':
        if (this.#phase !== 'open') return [];
        this.#lastFrameAt = now;
        this.#attempt = 0;
        this.#state = 'open';
        return [];
      case 'closed':
        if (this.#phase === 'closing') return this.#retry(now);
        if (this.#phase !== 'open' && this.#phase !== 'opening') return [];
        this.#missing(event.error ?? 'port closed');
        return this.#retry(now);
    }
  }

  tick(now: number): SupervisorAction[] {
    if (this.#phase === 'waiting') {
      if (this.#retryAt !== undefined && now < this.#retryAt) return [];
      this.#phase = 'resolving';
      this.#retryAt = undefined;
      return [{ type: 'resolve' }];
    }
    if (this.#phase !== 'open') return [];
    const silentAt = this.#silentAt();
    if (silentAt !== undefined && now >= silentAt) {
      this.#state = 'silent';
      this.#phase = 'closing';
      this.#lastError = 'no valid frame';
      return [{ type: 'close', reason: 'silent' }];
    }
    const identifyAt = this.#identifyAt();
    if (identifyAt !== undefined && now >= identifyAt) {
      this.#lastIdentifyAt = now;
      return [{ type: 'identify' }];
    }
    return [];
  }

  /** When {@link tick} next has something to do (monotonic ms), or undefined. */
  nextDueAt(): number | undefined {
    if (this.#phase === 'waiting') return this.#retryAt;
    if (this.#phase !== 'open') return undefined;
    const silentAt = this.#silentAt();
    const identifyAt = this.#identifyAt();
    if (silentAt === undefined) return identifyAt;
    return identifyAt === undefined ? silentAt : Math.min(silentAt, identifyAt);
  }

  #silentAt(): number | undefined {
    if (this.#config.silentAfterMs <= 0 || this.#held) return undefined;
    const quietSince = Math.max(this.#lastFrameAt ?? this.#openedAt, this.#releasedAt ?? 0);
    return quietSince + this.#config.silentAfterMs;
  }

  #identifyAt(): number | undefined {
    if (!this.#config.identify || this.#identified || this.#config.identifyEveryMs <= 0) {
      return undefined;
    }
    return this.#lastIdentifyAt + this.#config.identifyEveryMs;
  }

  #missing(error: string): void {
    this.#state = 'missing';
    this.#lastError = error;
  }

  #retry(now: number): SupervisorAction[] {
    const delay = backoffDelay(this.#config.backoff, this.#attempt, this.#random());
    this.#attempt++;
    this.#phase = 'waiting';
    this.#retryAt = now + delay;
    return [];
  }
}
