import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { type HttpFetch, nodeHttpFetch } from '../http/node-http-fetch.js';
import type { ClockEvidence, ClockQualityTracker } from './clock-quality.js';

/** systemd-timesyncd touches this file at each synchronisation (systemd-timesyncd(8)). */
export const TIMESYNCD_FLAG = '/run/systemd/timesync/synchronized';

export type ClockProbe = () => Promise<ClockEvidence | undefined>;

/** Evidence from systemd-timesyncd's flag file: present means synchronised. */
export function timesyncdProbe(path = TIMESYNCD_FLAG): ClockProbe {
  return async () => {
    try {
      const s = await stat(path);
      return { source: 'timesyncd', synchronized: true, touchedMs: s.mtimeMs };
    } catch {
      return { source: 'timesyncd', synchronized: false };
    }
  };
}

export interface IngestDateProbeOptions {
  /** The ingest's base URL; `/healthz` is asked. */
  server: string;
  now: () => number;
  fetch?: HttpFetch;
  timeoutMs?: number;
}

/**
 * The ingest's clock from its HTTP `Date` header (RFC 9110 §6.6.1, one-second steps). The
 * server's time lies in [Date, Date + 1 s) somewhere during the request, so it is compared
 * with the middle of our request at Date + 0.5 s. Undefined when the ingest is unreachable.
 */
export function ingestDateProbe(options: IngestDateProbeOptions): ClockProbe {
  const doFetch = options.fetch ?? nodeHttpFetch;
  const url = new URL('/healthz', options.server).toString();
  return async () => {
    const sent = options.now();
    let date: string | null;
    try {
      const res = await doFetch(url, {
        method: 'GET',
        signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      });
      date = res.headers.get('date');
      await res.body?.cancel();
    } catch {
      return undefined;
    }
    const received = options.now();
    const serverMs = date === null ? Number.NaN : Date.parse(date);
    // A slow answer says little about the time: skip it.
    if (!Number.isFinite(serverMs) || received - sent > 2000) return undefined;
    return { source: 'ingest', offsetMs: serverMs + 500 - (sent + received) / 2 };
  };
}

export interface ClockSyncOptions {
  tracker: ClockQualityTracker;
  probes: readonly ClockProbe[];
  /** How often every probe runs; default 60 s. */
  everyMs?: number;
  /** How often the wall clock is checked for jumps; default 1 s. */
  checkEveryMs?: number;
  logger: Logger;
}

/**
 * Runs the probes on a timer and right after a jump, and looks for jumps every second so
 * one is noticed even when no reading arrives.
 */
export class ClockSync {
  readonly #options: ClockSyncOptions;
  #probeTimer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #offJump: (() => void) | undefined;
  #running: Promise<void> | undefined;

  constructor(options: ClockSyncOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const { tracker, logger } = this.#options;
    this.#offJump = tracker.onJump((jump) => {
      logger.warn({ byMs: Math.round(jump.byMs) }, 'wall clock jumped; readings flagged unsynced');
      void this.probe();
    });
    await this.probe();
    this.#probeTimer = setInterval(() => void this.probe(), this.#options.everyMs ?? 60_000);
    this.#probeTimer.unref();
    this.#checkTimer = setInterval(() => tracker.check(), this.#options.checkEveryMs ?? 1000);
    this.#checkTimer.unref();
  }

  /** Runs every probe once (one run at a time). */
  probe(): Promise<void> {
    this.#running ??= (async () => {
      try {
        for (const probe of this.#options.probes) {
          let evidence: ClockEvidence | undefined;
          try {
            evidence = await probe();
          } catch (err) {
            this.#options.logger.debug({ err }, 'clock probe failed');
          }
          if (evidence === undefined) continue;
          const before = this.#options.tracker.quality();
          const after = this.#options.tracker.report(evidence);
          if (before !== after) {
            this.#options.logger.info({ source: evidence.source, quality: after }, 'clock quality');
          }
        }
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  stop(): void {
    clearInterval(this.#probeTimer);
    clearInterval(this.#checkTimer);
    this.#offJump?.();
  }
}
