import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DurableOutbox } from '../src/telemetry/durable-outbox.js';

// Real: a child process accepting into the outbox (built JS, real SQLite file), SIGKILL.
// The parent reopens the file the way the service would after a crash.
const appDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const child = join(appDir, 'test/fixtures/outbox-crash-child.mjs');
const dir = mkdtempSync(join(tmpdir(), 'outpost-crash-'));
const T0 = 1_700_000_000_000;

beforeAll(async () => {
  // Builds the outbox (and what it imports) into dist/ exactly as tsconfig.build.json does,
  // without depending on the rest of the app compiling.
  const config = join(dir, 'tsconfig.outbox.json');
  writeFileSync(
    config,
    JSON.stringify({
      extends: join(appDir, 'tsconfig.build.json'),
      compilerOptions: {
        outDir: join(appDir, 'dist'),
        rootDir: join(appDir, 'src'),
        // Type roots are looked up from the config's own directory otherwise.
        typeRoots: [join(appDir, 'node_modules/@types'), join(appDir, '../../node_modules/@types')],
      },
      include: [],
      files: [join(appDir, 'src/telemetry/durable-outbox.ts')],
    }),
  );
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', config]);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the child until it has acked `atLeast` batches, kill -9s it; every batch it acked. */
async function crashAfter(path: string, boot: string, atLeast: number): Promise<number[]> {
  const proc = spawn(process.execPath, [child, path, boot, '16'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const acked: number[] = [];
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    proc.on('exit', (_code, signal) => resolve(signal)),
  );
  for await (const line of createInterface({ input: proc.stdout })) {
    const m = /^acked (\d+)$/.exec(line);
    if (m) acked.push(Number(m[1]));
    if (acked.length === atLeast) proc.kill('SIGKILL');
  }
  expect(await exited, stderr).toBe('SIGKILL');
  return acked;
}

describe('DurableOutbox after kill -9', () => {
  it('holds every batch it acknowledged, across repeated crashes', async () => {
    const path = join(dir, 'telemetry-outbox.db');
    const ackedByBoot = new Map<string, number[]>();
    for (const [round, atLeast] of [200, 500, 50].entries()) {
      const boot = `boot-${round}`;
      ackedByBoot.set(boot, await crashAfter(path, boot, atLeast!));
    }

    const outbox = new DurableOutbox({ path });
    try {
      const stored = await outbox.peek(Number.MAX_SAFE_INTEGER);
      expect(outbox.stats().pendingBatches).toBe(stored.length);
      const present = new Set(stored.map((b) => `${b.boot}/${b.seq![0] / 100}`));
      for (const [boot, acked] of ackedByBoot) {
        expect(acked.length).toBeGreaterThan(0);
        const missing = acked.filter((n) => !present.has(`${boot}/${n}`));
        expect(missing, `${boot}: acked but lost`).toEqual([]);
      }
      for (const batch of stored) {
        const n = batch.seq![0] / 100;
        expect(batch.points).toHaveLength(100);
        expect(batch.points[99]).toEqual({
          device: 'crash-dev',
          metric: 'temp',
          timeMs: T0 + n * 100 + 99,
          value: n + 0.99,
          unit: 'Cel',
          tags: { site: 'lab' },
        });
      }
      // A replay of an acked batch is still recognised after the crash.
      const [boot, acked] = [...ackedByBoot][1]!;
      expect(
        await outbox.accept({
          publisher: 'crash-dev',
          boot,
          seq: [acked[0]! * 100, acked[0]! * 100 + 99],
          points: [],
        }),
      ).toBe('duplicate');
    } finally {
      await outbox.close();
    }
  });
});
