import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type DownloadDeps,
  downloadArtifact,
  promoteStaged,
  retryAfterMs,
} from './artifact-download.js';

// Real parts: the staging directory on disk. Fake: the ingest, as a `fetch` answering from a
// script of responses (status, headers, body), and time (sleeps are recorded, not waited).

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const IMAGE = randomBytes(10_000);
const SHA = createHash('sha256').update(IMAGE).digest('hex');
const URL_ = 'http://ingest.test/api/v1/firmware/f1/artifact';

type Step = (req: { range: string | undefined; auth: string }) => Response;

function harness(steps: Step[]) {
  const seen: { range: string | undefined; auth: string }[] = [];
  const sleeps: number[] = [];
  let tokens = 0;
  const deps: DownloadDeps = {
    token: async (fresh) => `t${++tokens}${fresh ? '-fresh' : ''}`,
    fetch: async (_url, init) => {
      const headers = init?.headers ?? {};
      const req = { range: headers.range, auth: headers.authorization! };
      seen.push(req);
      const step = steps.shift();
      if (step === undefined) throw new Error('no more responses scripted');
      return step(req);
    },
    random: () => 0.5,
    monotonic: () => 0,
    now: () => 1_760_000_000_000,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    backoff: { initialMs: 100, maxMs: 1000 },
    maxAttempts: 3,
    maxRetryAfterMs: 60_000,
    idleTimeoutMs: 5000,
    progressEveryMs: 1000,
  };
  return { deps, seen, sleeps };
}

async function staging() {
  const d = await mkdtemp(join(tmpdir(), 'download-spec-'));
  dirs.push(d);
  return join(d, 'staging');
}

const full = () => new Response(IMAGE, { status: 200, headers: { 'content-length': '10000' } });
const partial = (from: number) =>
  new Response(IMAGE.subarray(from), {
    status: 206,
    headers: { 'content-range': `bytes ${from}-9999/10000` },
  });
const status = (s: number, headers: Record<string, string> = {}) =>
  new Response(null, { status: s, headers });

function request(stagingDir: string) {
  return {
    url: URL_,
    stagingDir,
    size: IMAGE.length,
    sha256: SHA,
    signal: new AbortController().signal,
    onProgress: () => undefined,
  };
}

describe('downloadArtifact', () => {
  it('downloads with the device JWT as bearer; the checked image gets its digest name', async () => {
    const dir = await staging();
    const h = harness([full]);
    const result = await downloadArtifact(request(dir), h.deps);
    expect(result).toEqual({ ok: true, path: join(dir, `${SHA}.part`), verified: false });
    expect(h.seen).toEqual([{ range: undefined, auth: 'Bearer t1' }]);
    expect(await promoteStaged(dir, IMAGE.length, SHA)).toEqual({
      ok: true,
      path: join(dir, `${SHA}.img`),
    });
    expect(await readdir(dir)).toEqual([`${SHA}.img`]);
  });

  it('resumes from what is on disk with Range and If-Range', async () => {
    const dir = await staging();
    const h = harness([() => partial(4000)]);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${SHA}.part`), IMAGE.subarray(0, 4000));
    const result = await downloadArtifact(request(dir), h.deps);
    expect(result.ok).toBe(true);
    expect(h.seen[0]!.range).toBe('bytes=4000-');
    expect(Buffer.compare(await readFile(join(dir, `${SHA}.part`)), IMAGE)).toBe(0);
  });

  it.each([
    [
      '429 with Retry-After: waits as told, without counting an attempt',
      [429, 429, 429, 429],
      4,
      [3000, 3000, 3000, 3000],
    ],
    ['503 with Retry-After: waits as told', [503], 1, [3000]],
  ])('%s', async (_what, codes, waits, sleeps) => {
    const dir = await staging();
    const steps: Step[] = codes.map((c) => () => status(c, { 'retry-after': '3' }));
    const h = harness([...steps, full]);
    const result = await downloadArtifact(request(dir), h.deps);
    expect(result.ok).toBe(true);
    expect(h.sleeps).toHaveLength(waits);
    expect(h.sleeps).toEqual(sleeps);
  });

  it('bounds a long Retry-After', async () => {
    const dir = await staging();
    const h = harness([() => status(429, { 'retry-after': '86400' }), full]);
    await downloadArtifact(request(dir), h.deps);
    expect(h.sleeps).toEqual([60_000]);
  });

  it.each([
    ['404', [404], 'artifact_not_found'],
    ['401 twice (a fresh token is tried once)', [401, 401], 'download_refused'],
    ['5xx until the attempts are spent', [500, 502, 500], 'download_failed'],
    ['a redirect, retried and never followed', [302, 307, 302], 'download_failed'],
  ])('fails on %s', async (_what, codes, reason) => {
    const dir = await staging();
    const h = harness(codes.map((c) => () => status(c)));
    const result = await downloadArtifact(request(dir), h.deps);
    expect(result).toMatchObject({ ok: false, reason });
    if (reason === 'download_refused') expect(h.seen[1]!.auth).toBe('Bearer t2-fresh');
  });

  it('refuses a server that announces or sends more than the manifest size', async () => {
    const dir = await staging();
    const big = Buffer.concat([IMAGE, Buffer.alloc(10)]);
    const announced = harness([() => new Response(big, { status: 200 })]);
    expect(await downloadArtifact(request(dir), announced.deps)).toMatchObject({
      ok: false,
      reason: 'size_mismatch',
    });
    const streamed = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(big.subarray(0, 6000));
        c.enqueue(big.subarray(6000));
        c.close();
      },
    });
    const sneaky = harness([() => new Response(streamed, { status: 200 })]);
    expect(await downloadArtifact(request(dir), sneaky.deps)).toMatchObject({
      ok: false,
      reason: 'size_mismatch',
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('starts again when the server answers a range with the whole artifact', async () => {
    const dir = await staging();
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${SHA}.part`), Buffer.alloc(4000, 7));
    const h = harness([full]);
    expect((await downloadArtifact(request(dir), h.deps)).ok).toBe(true);
    expect(Buffer.compare(await readFile(join(dir, `${SHA}.part`)), IMAGE)).toBe(0);
  });

  it('retries a response that ends early, from where it ended', async () => {
    const dir = await staging();
    const h = harness([
      () => new Response(IMAGE.subarray(0, 3000), { status: 200 }),
      () => partial(3000),
    ]);
    expect((await downloadArtifact(request(dir), h.deps)).ok).toBe(true);
    expect(h.seen.map((s) => s.range)).toEqual([undefined, 'bytes=3000-']);
  });

  it('removes bytes that do not match the digest', async () => {
    const dir = await staging();
    const spoiled = Buffer.from(IMAGE);
    spoiled[5000]! ^= 1;
    const h = harness([() => new Response(spoiled, { status: 200 })]);
    expect((await downloadArtifact(request(dir), h.deps)).ok).toBe(true);
    expect(await promoteStaged(dir, IMAGE.length, SHA)).toEqual({
      ok: false,
      reason: 'sha256_mismatch',
    });
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('retryAfterMs', () => {
  const now = Date.parse('2026-11-21T12:00:00Z');
  it.each([
    ['3', 3000],
    [' 120 ', 120_000],
    ['Sat, 21 Nov 2026 12:00:30 GMT', 30_000],
    ['Sat, 21 Nov 2026 11:00:00 GMT', 0],
    ['soon', undefined],
    [null, undefined],
  ])('%j → %s', (value, ms) => {
    expect(retryAfterMs(value, now)).toBe(ms);
  });
});
