import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { HttpFetch, HttpResponse } from '../http/node-http-fetch.js';
import { type BackoffOptions, backoffDelay } from '../uplink/backoff.js';
import { stagingNames } from './offer-checks.js';

/**
 * Downloads a firmware artifact from the ingest (`GET /api/v1/firmware/{id}/artifact`, a
 * device JWT as bearer) into the staging dir, resuming with HTTP `Range` (RFC 9110 §14)
 * from what an earlier attempt, or an earlier run of the agent, left on disk. It honours 429
 * and 503 with `Retry-After`, retries other transient failures with backoff, never accepts
 * more bytes than the manifest's `size`, and checks size and sha256 before the image counts
 * as staged.
 */
export interface DownloadRequest {
  url: string;
  stagingDir: string;
  size: number;
  sha256: string;
  signal: AbortSignal;
  /** Bytes on disk so far, at most every `progressEveryMs`, and once at the end. */
  onProgress(received: number): void;
}

export interface DownloadDeps {
  /** A device JWT (PROTOCOL.md §3); `fresh` after the ingest refused the cached one. */
  token(fresh: boolean): Promise<string>;
  /**
   * Must not follow redirects (nodeHttpFetch does not): a 3xx is retried like any other
   * unexpected status, and the device JWT never leaves the ingest's origin.
   */
  fetch: HttpFetch;
  random: () => number;
  /** Monotonic ms, for the progress pace. */
  monotonic: () => number;
  /** Wall clock, epoch ms, for a `Retry-After` date. */
  now: () => number;
  /** Resolves after `ms`, early (rejecting) when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  backoff: BackoffOptions;
  /** Failed attempts (network, 5xx) before giving up; 429 waits do not count. */
  maxAttempts: number;
  /** Longest `Retry-After` honoured; longer ones wait this long. */
  maxRetryAfterMs: number;
  /** Stalled for this long without a byte: the attempt is abandoned and retried. */
  idleTimeoutMs: number;
  progressEveryMs: number;
}

export type DownloadResult =
  /** `verified`: a complete image staged earlier, already checked; else the caller checks it. */
  | { ok: true; path: string; verified: boolean }
  | {
      ok: false;
      reason: 'size_mismatch' | 'artifact_not_found' | 'download_refused' | 'download_failed';
      detail: string;
    };

/** Transient: try again after a while. */
class Retry extends Error {
  constructor(
    message: string,
    readonly afterMs?: number,
    readonly counts = true,
  ) {
    super(message);
  }
}

export async function downloadArtifact(
  request: DownloadRequest,
  deps: DownloadDeps,
): Promise<DownloadResult> {
  const { size, sha256, signal } = request;
  const names = stagingNames(sha256);
  await mkdir(request.stagingDir, { recursive: true, mode: 0o700 });
  const partial = join(request.stagingDir, names.partial);
  const complete = join(request.stagingDir, names.complete);
  if (await hasSize(complete, size)) {
    const check = await verifyFile(complete, size, sha256);
    if (check === undefined) return { ok: true, path: complete, verified: true };
    await rm(complete, { force: true });
  }

  let failures = 0;
  let freshToken = false;
  for (;;) {
    signal.throwIfAborted();
    let received = await sizeOf(partial);
    if (received > size) {
      await rm(partial, { force: true });
      received = 0;
    }
    if (received === size) break;
    try {
      received = await attempt(request, deps, partial, received, freshToken);
      freshToken = false;
      if (received === size) break;
      throw new Retry('the response ended early');
    } catch (err) {
      if (signal.aborted) throw err;
      if (err instanceof Permanent) {
        if (err.reason === 'download_refused' && !freshToken) {
          // A token the ingest no longer accepts (clock moved, key rolled): one fresh try.
          freshToken = true;
          continue;
        }
        return { ok: false, reason: err.reason, detail: err.message };
      }
      if (err instanceof TooLarge) {
        await rm(partial, { force: true });
        return { ok: false, reason: 'size_mismatch', detail: err.message };
      }
      const retry = err instanceof Retry ? err : new Retry((err as Error).message);
      if (retry.counts) failures++;
      if (failures >= deps.maxAttempts) {
        return {
          ok: false,
          reason: 'download_failed',
          detail: `${failures} attempts failed, the last: ${retry.message}`,
        };
      }
      const wait =
        retry.afterMs !== undefined
          ? Math.min(retry.afterMs, deps.maxRetryAfterMs)
          : backoffDelay(failures - 1, deps.random(), deps.backoff);
      await deps.sleep(wait, signal);
    }
  }
  request.onProgress(size);
  return { ok: true, path: partial, verified: false };
}

/**
 * Checks the downloaded bytes against the manifest; when they match, the image is renamed to
 * its final staged name, else removed (never resume from bytes known to be wrong).
 */
export async function promoteStaged(
  stagingDir: string,
  size: number,
  sha256: string,
): Promise<
  { ok: true; path: string } | { ok: false; reason: 'size_mismatch' | 'sha256_mismatch' }
> {
  const names = stagingNames(sha256);
  const partial = join(stagingDir, names.partial);
  const problem = await verifyFile(partial, size, sha256);
  if (problem !== undefined) {
    await rm(partial, { force: true });
    return { ok: false, reason: problem };
  }
  const complete = join(stagingDir, names.complete);
  await rename(partial, complete);
  return { ok: true, path: complete };
}

/** Removes what is staged for an image (after its update ended). */
export async function removeStaged(stagingDir: string, sha256: string): Promise<void> {
  const names = stagingNames(sha256);
  await rm(join(stagingDir, names.partial), { force: true });
  await rm(join(stagingDir, names.complete), { force: true });
}

class Permanent extends Error {
  constructor(
    readonly reason: 'artifact_not_found' | 'download_refused',
    message: string,
  ) {
    super(message);
  }
}

class TooLarge extends Error {}

/** One request; returns the bytes on disk afterwards. */
async function attempt(
  request: DownloadRequest,
  deps: DownloadDeps,
  partial: string,
  from: number,
  freshToken: boolean,
): Promise<number> {
  const { size, sha256, signal } = request;
  const token = await deps.token(freshToken);
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (from > 0) {
    headers.range = `bytes=${from}-`;
    // The ingest's ETag is the quoted sha256: if the artifact were another, send it whole.
    headers['if-range'] = `"${sha256}"`;
  }
  const idle = new AbortController();
  const both = AbortSignal.any([signal, idle.signal]);
  let res: HttpResponse;
  try {
    res = await deps.fetch(request.url, { headers, signal: both });
  } catch (err) {
    throw new Retry(`request failed: ${(err as Error).message}`);
  }
  if (res.status === 429 || res.status === 503) {
    await res.body?.cancel().catch(() => undefined);
    const after = retryAfterMs(res.headers.get('retry-after'), deps.now());
    throw new Retry(`HTTP ${res.status}`, after, res.status !== 429);
  }
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel().catch(() => undefined);
    throw new Permanent('download_refused', `HTTP ${res.status}`);
  }
  if (res.status === 404 || res.status === 410) {
    await res.body?.cancel().catch(() => undefined);
    throw new Permanent('artifact_not_found', `HTTP ${res.status}`);
  }
  if (res.status === 416) {
    // What is staged is not a prefix of this artifact: start again.
    await res.body?.cancel().catch(() => undefined);
    await rm(partial, { force: true });
    throw new Retry('HTTP 416: starting again', 0);
  }
  let offset: number;
  if (res.status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
    if (range === null || Number(range[1]) !== from) {
      await res.body?.cancel().catch(() => undefined);
      await rm(partial, { force: true });
      throw new Retry('a partial response for another range: starting again', 0);
    }
    offset = from;
  } else if (res.status === 200) {
    offset = 0;
  } else {
    await res.body?.cancel().catch(() => undefined);
    throw new Retry(`HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && offset + declared > size) {
    await res.body?.cancel().catch(() => undefined);
    throw new TooLarge(`the server offers ${offset + declared} bytes, the manifest says ${size}`);
  }
  if (res.body === null) throw new Retry('no body');

  const file = await open(partial, offset === 0 ? 'w' : 'r+', 0o600);
  let received = offset;
  let lastProgress = deps.monotonic();
  let idleTimer: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => idle.abort(), deps.idleTimeoutMs);
  };
  try {
    armIdle();
    for await (const chunk of res.body) {
      armIdle();
      if (received + chunk.byteLength > size) {
        throw new TooLarge(`the server sent more than the manifest's ${size} bytes`);
      }
      await file.write(chunk, 0, chunk.byteLength, received);
      received += chunk.byteLength;
      if (deps.monotonic() - lastProgress >= deps.progressEveryMs) {
        lastProgress = deps.monotonic();
        // What is reported as received must be on disk after a crash.
        await file.sync();
        request.onProgress(received);
      }
    }
  } catch (err) {
    if (err instanceof TooLarge || signal.aborted) throw err;
    throw new Retry(`the download broke off at ${received} bytes: ${(err as Error).message}`);
  } finally {
    clearTimeout(idleTimer);
    await file.sync().catch(() => undefined);
    await file.close();
  }
  return received;
}

/** Retry-After in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function retryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d{1,9}$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hasSize(path: string, size: number): Promise<boolean> {
  return (await sizeOf(path)) === size;
}

/** Undefined when the file has the manifest's size and sha256. */
export async function verifyFile(
  path: string,
  size: number,
  sha256: string,
): Promise<'size_mismatch' | 'sha256_mismatch' | undefined> {
  if ((await sizeOf(path)) !== size) return 'size_mismatch';
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex') === sha256 ? undefined : 'sha256_mismatch';
}
