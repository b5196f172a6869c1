import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SHA256_HEX_PATTERN } from '@outpost/protocol/ota';
import { ArtifactMismatch } from './ota-errors.js';

/** What a stored artifact must be: from the signed manifest. */
export interface ArtifactDigest {
  size: number;
  sha256: string;
}

interface Verified {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  at: number;
}

/** The artifact is missing, or its bytes are not those it was stored with. */
export class ArtifactDamaged extends Error {
  constructor(readonly why: 'missing' | 'size' | 'sha256') {
    super(`artifact ${why === 'missing' ? 'missing' : `${why} mismatch`}`);
  }
}

/**
 * Firmware artifacts on disk, content-addressed: `<data dir>/firmware/<sha256>`. The path is
 * made only from a validated digest, never from a name a client gave. An upload is written
 * to `incoming/` while it is hashed and counted, refused unless it has exactly the size and
 * sha256 of its manifest, fsynced and renamed into place, so a crash never leaves a partial
 * artifact under its digest.
 *
 * Reads are verified: before an artifact is served, its sha256 is computed again unless the
 * file is unchanged (same inode, size, mtime and ctime) since a check less than `verifyTtlMs`
 * ago. A byte changed on disk changes the ctime, so tampering is caught at the next read.
 */
export class FirmwareStore {
  private readonly incoming: string;
  private readonly verified = new Map<string, Verified>();
  private readonly checking = new Map<string, Promise<void>>();

  constructor(
    readonly dir: string,
    private readonly verifyTtlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.incoming = join(dir, 'incoming');
  }

  /** Creates the directories and removes uploads a crash left half written. */
  async init(): Promise<void> {
    await mkdir(this.incoming, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.incoming)) {
      await rm(join(this.incoming, name), { force: true });
    }
  }

  pathOf(sha256: string): string {
    // Defence in depth: the digest comes from a verified manifest, but a path is only ever
    // made from 64 lowercase hex characters.
    if (!SHA256_HEX_PATTERN.test(sha256)) throw new Error('not a sha256 digest');
    return join(this.dir, sha256);
  }

  /**
   * Stores `body` if it is exactly `expected`; throws `ArtifactMismatch` otherwise, having
   * read no more than `expected.size + 1` bytes' worth of chunks.
   */
  async write(body: AsyncIterable<Uint8Array>, expected: ArtifactDigest): Promise<void> {
    const final = this.pathOf(expected.sha256);
    const temp = join(this.incoming, `${randomUUID()}.part`);
    const file = await open(temp, 'wx', 0o600);
    let done = false;
    try {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of body) {
        size += chunk.byteLength;
        if (size > expected.size) {
          throw new ArtifactMismatch(
            'artifact_size_mismatch',
            `the artifact is larger than the ${expected.size} bytes its manifest names`,
            { expected: expected.size, received: `more than ${expected.size}` },
          );
        }
        hash.update(chunk);
        await file.write(chunk);
      }
      if (size !== expected.size) {
        throw new ArtifactMismatch(
          'artifact_size_mismatch',
          `the artifact has ${size} bytes; its manifest names ${expected.size}`,
          { expected: expected.size, received: size },
        );
      }
      const digest = hash.digest('hex');
      if (digest !== expected.sha256) {
        throw new ArtifactMismatch(
          'artifact_sha256_mismatch',
          'the artifact does not have the sha256 its manifest names',
          { expected: expected.sha256, received: digest },
        );
      }
      await file.sync();
      await file.close();
      done = true;
      await rename(temp, final);
      await syncDir(this.dir);
      this.verified.delete(expected.sha256);
    } finally {
      if (!done) {
        await file.close().catch(() => {});
        await rm(temp, { force: true });
      }
    }
  }

  /** Throws `ArtifactDamaged` unless the artifact has its size and sha256 (see class doc). */
  async verify(expected: ArtifactDigest): Promise<void> {
    const path = this.pathOf(expected.sha256);
    let s: Awaited<ReturnType<typeof stat>>;
    try {
      s = await stat(path);
    } catch {
      throw new ArtifactDamaged('missing');
    }
    if (s.size !== expected.size) {
      this.verified.delete(expected.sha256);
      throw new ArtifactDamaged('size');
    }
    const known = this.verified.get(expected.sha256);
    if (
      known &&
      known.dev === s.dev &&
      known.ino === s.ino &&
      known.size === s.size &&
      known.mtimeMs === s.mtimeMs &&
      known.ctimeMs === s.ctimeMs &&
      this.now() - known.at < this.verifyTtlMs
    ) {
      return;
    }
    // Concurrent downloads of one artifact share one hashing pass.
    let pending = this.checking.get(expected.sha256);
    if (!pending) {
      pending = this.hash(path, expected, s).finally(() => this.checking.delete(expected.sha256));
      this.checking.set(expected.sha256, pending);
    }
    await pending;
  }

  /** A read stream of `[start, end]` (inclusive) of a verified artifact. */
  async read(expected: ArtifactDigest, start: number, end: number): Promise<ReadStream> {
    await this.verify(expected);
    return createReadStream(this.pathOf(expected.sha256), { start, end });
  }

  private async hash(
    path: string,
    expected: ArtifactDigest,
    before: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number },
  ): Promise<void> {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    if (hash.digest('hex') !== expected.sha256) {
      this.verified.delete(expected.sha256);
      throw new ArtifactDamaged('sha256');
    }
    this.verified.set(expected.sha256, {
      dev: before.dev,
      ino: before.ino,
      size: before.size,
      mtimeMs: before.mtimeMs,
      ctimeMs: before.ctimeMs,
      at: this.now(),
    });
  }
}

/** Makes a rename in `dir` durable (POSIX: the directory entry lives in the directory). */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
