import { spawn } from 'node:child_process';
import { mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterEach, describe, expect, it } from 'vitest';
import { LAUNCHER } from './support/ota-harness.js';

// Real parts: the launcher as a process over an install root on disk, with tiny entry
// scripts standing in for agent versions (each appends its name to runs.log and exits as
// told).

const ENTRY = 'main.mjs';
let work: WorkDir | undefined;
afterEach(async () => {
  await work?.cleanup();
  work = undefined;
});

async function version(root: string, name: string, body: string): Promise<void> {
  const dir = join(root, 'versions', name);
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, ENTRY),
    `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(join(root, 'runs.log'))}, ${JSON.stringify(`${name}\n`)});\n${body}\n`,
  );
}

function launch(root: string): Promise<{ code: number | null; stderr: string }> & {
  child: ReturnType<typeof spawn>;
} {
  const child = spawn(process.execPath, [LAUNCHER, '--root', root, '--', ENTRY, 'run'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stderr })),
  );
  return Object.assign(done, { child });
}

const runs = async (root: string) =>
  (await readFile(join(root, 'runs.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('outpost-agent-launcher', () => {
  it('starts current again after exit code 75 and exits with the agent’s own code otherwise', async () => {
    work = await makeWorkDir('ota-launcher');
    const root = work.path;
    const flag = join(root, 'restarted');
    await version(
      root,
      '1.0.0',
      `import { existsSync, writeFileSync } from 'node:fs';
if (!existsSync(${JSON.stringify(flag)})) { writeFileSync(${JSON.stringify(flag)}, ''); process.exit(75); }
process.exit(3);`,
    );
    await symlink('versions/1.0.0', join(root, 'current'));
    const { code } = await launch(root);
    expect(code).toBe(3);
    expect(await runs(root)).toEqual(['1.0.0', '1.0.0']);
  });

  it('switches back after maxBoots starts of a version on trial that keeps failing', async () => {
    work = await makeWorkDir('ota-launcher');
    const root = work.path;
    await version(root, '1.0.0', 'process.exit(0);');
    await version(root, '1.1.0', "throw new Error('broken build');");
    await symlink('versions/1.1.0', join(root, 'current'));
    await writeFile(
      join(root, 'trial.json'),
      JSON.stringify({
        v: 1,
        phase: 'trial',
        from: { version: '1.0.0', dir: 'versions/1.0.0' },
        to: { version: '1.1.0', dir: 'versions/1.1.0' },
        boots: 0,
        maxBoots: 2,
        trialStartedAt: null,
      }),
    );
    const { code, stderr } = await launch(root);
    expect(code).toBe(0);
    expect(await runs(root)).toEqual(['1.1.0', '1.1.0', '1.0.0']);
    expect(await readlink(join(root, 'current'))).toBe('versions/1.0.0');
    const marker = JSON.parse(await readFile(join(root, 'trial.json'), 'utf8'));
    expect(marker).toMatchObject({ phase: 'rolled_back', reason: 'crash_loop', boots: 2 });
    expect(stderr).toMatch(/switching back/);
  });

  it('passes SIGTERM on to the agent and exits with its code', async () => {
    work = await makeWorkDir('ota-launcher');
    const root = work.path;
    await version(
      root,
      '1.0.0',
      "process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000);",
    );
    await symlink('versions/1.0.0', join(root, 'current'));
    const running = launch(root);
    for (let i = 0; i < 200 && (await runs(root)).length === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    running.child.kill('SIGTERM');
    expect((await running).code).toBe(0);
  });

  it('refuses an entry outside the version directory', async () => {
    work = await makeWorkDir('ota-launcher');
    const child = spawn(process.execPath, [LAUNCHER, '--root', work.path, '--', '../x.mjs'], {
      stdio: 'ignore',
    });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
  });
});
