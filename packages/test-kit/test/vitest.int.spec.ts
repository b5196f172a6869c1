import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { runCommand } from '../src/process.js';
import { makeWorkDir } from '../src/workdir.js';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const vitestBin = join(
  dirname(createRequire(import.meta.url).resolve('vitest/package.json')),
  'vitest.mjs',
);

it('useServices() stops services after each suite, keeping logs only where something failed', async () => {
  const work = await makeWorkDir('use-services');
  try {
    const out = work.join('stops.txt');
    const env: NodeJS.ProcessEnv = { OUTPOST_FIXTURE_OUT: out };
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.startsWith('VITEST') && key !== 'OUTPOST_TEST_KEEP') env[key] ??= value;
    }
    const result = await runCommand(
      process.execPath,
      [vitestBin, 'run', '--root', join(packageDir, 'fixtures/use-services'), '--reporter=dot'],
      { env, check: false, timeoutMs: 60_000 },
    );
    expect(result.code, result.stdout + result.stderr).toBe(1);
    const lines = (await readFile(out, 'utf8')).trim().split('\n');
    expect(lines).toEqual([
      'passing keepLogs=false',
      'failing-2 keepLogs=true',
      'failing-1 keepLogs=true',
      'hook keepLogs=true',
    ]);
  } finally {
    await work.cleanup();
  }
});
