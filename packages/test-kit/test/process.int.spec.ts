import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CommandError,
  liveChildPids,
  ManagedProcess,
  ReadinessError,
  runCommand,
  waitFor,
  waitForHttp,
  waitForTcp,
} from '../src/process.js';
import { makeWorkDir, type WorkDir } from '../src/workdir.js';

const distProcess = join(dirname(fileURLToPath(import.meta.url)), '../dist/process.js');

/** True once `pid` is gone or only a zombie waiting to be reaped. */
function dead(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

let work: WorkDir;
beforeAll(async () => {
  work = await makeWorkDir('process-int');
});
afterAll(async () => {
  await work.cleanup();
});

describe('ManagedProcess', () => {
  it('writes output to its log and reports the exit', async () => {
    const proc = ManagedProcess.start({
      name: 'echo',
      command: 'sh',
      args: ['-c', 'echo out; echo err >&2; exit 3'],
      logPath: work.join('echo.log'),
    });
    expect(await proc.waitForExit(5_000)).toEqual({ code: 3, signal: null });
    expect(proc.running).toBe(false);
    expect(proc.tail(2)).toBe('out\nerr');
    expect(proc.log()).toContain('start echo: sh -c');
  });

  it('escalates to SIGKILL when SIGTERM is ignored, and stop() is idempotent', async () => {
    const proc = ManagedProcess.start({
      name: 'stubborn',
      command: process.execPath,
      args: [
        '-e',
        "process.on('SIGTERM', () => console.log('got', 'SIGTERM')); console.log('pid', process.pid); setInterval(() => {}, 1000)",
      ],
      logPath: work.join('stubborn.log'),
    });
    // The log's first line quotes the command, so wait for output only the child can produce.
    await waitFor(() => proc.log().includes(`pid ${proc.pid}`), { process: proc });
    const [first, second] = await Promise.all([proc.stop(1_000), proc.stop(1_000)]);
    expect(first).toEqual({ code: null, signal: 'SIGKILL' });
    expect(second).toBe(first);
    expect(proc.log()).toContain('got SIGTERM');
  });

  it('kill9() crashes the process', async () => {
    const proc = ManagedProcess.start({
      name: 'sleeper',
      command: 'sleep',
      args: ['30'],
      logPath: work.join('sleeper.log'),
    });
    expect(liveChildPids()).toContain(proc.pid);
    expect(await proc.kill9()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(liveChildPids()).not.toContain(proc.pid);
  });

  it('reports a command that cannot be started', async () => {
    const proc = ManagedProcess.start({
      name: 'ghost',
      command: join(work.path, 'no-such-binary'),
      logPath: work.join('ghost.log'),
    });
    const status = await proc.waitForExit(5_000);
    expect(status.error?.message).toContain('ENOENT');
  });
});

describe('readiness helpers', () => {
  it('fail as soon as the process exits, with the log tail and path', async () => {
    const proc = ManagedProcess.start({
      name: 'crasher',
      command: 'sh',
      args: ['-c', "printf 'bind: %s\\n' 'address already in use' >&2; exit 1"],
      logPath: work.join('crasher.log'),
    });
    const started = Date.now();
    const err = await waitForTcp(1, { process: proc, timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(ReadinessError);
    const message = (err as Error).message;
    expect(message).toMatch(/^crasher exited with code 1 while waiting for TCP 127\.0\.0\.1:1\n/);
    expect(message).toContain('bind: address already in use');
    expect(message).toContain(`--- last lines of ${work.join('crasher.log')} ---`);
  });

  it('time out with the last check error and the log tail', async () => {
    const proc = ManagedProcess.start({
      name: 'silent',
      command: 'sh',
      args: ['-c', "printf 'still %s\\n' loading; sleep 30"],
      logPath: work.join('silent.log'),
    });
    try {
      await waitFor(() => proc.log().includes('still loading'), { process: proc });
      const err = await waitForHttp('http://127.0.0.1:1/health', {
        process: proc,
        timeoutMs: 300,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ReadinessError);
      expect((err as ReadinessError).reason).toBe('timeout');
      const message = (err as Error).message;
      expect(message).toContain(
        'timed out after 300 ms waiting for HTTP 2xx from http://127.0.0.1:1/health',
      );
      expect(message).toContain('last check failed with: fetch failed');
      expect(message).toContain('still loading');
    } finally {
      await proc.stop();
    }
  });
});

describe('runCommand', () => {
  it('captures output, and throws CommandError on failure unless told not to', async () => {
    const ok = await runCommand('sh', ['-c', 'cat; echo done >&2'], { input: 'hi' });
    expect(ok).toMatchObject({ code: 0, stdout: 'hi', stderr: 'done\n' });

    const failed = await runCommand('sh', ['-c', 'echo nope >&2; exit 2'], { check: false });
    expect(failed.code).toBe(2);

    const err = await runCommand('sh', ['-c', 'echo nope >&2; exit 2']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as Error).message).toBe('`sh -c echo nope >&2; exit 2` exited with code 2:\nnope');
  });

  it('kills a command that runs too long', async () => {
    const err = await runCommand('sleep', ['30'], { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as Error).message).toContain('(timed out)');
  });
});

describe('children of an ending test process', () => {
  beforeAll(() => {
    if (!existsSync(distProcess)) throw new Error(`${distProcess} missing: run \`npm run build\``);
  });

  async function childPidAfter(ending: 'exit' | 'SIGTERM'): Promise<number> {
    const script = `
      import { ManagedProcess } from ${JSON.stringify(pathToFileURL(distProcess).href)};
      const p = ManagedProcess.start({ name: 'orphan', command: 'sleep', args: ['60'], logPath: ${JSON.stringify(work.join(`orphan-${ending}.log`))} });
      console.log(p.pid);
      ${ending === 'exit' ? 'process.exit(0);' : "setInterval(() => {}, 1000); setTimeout(() => process.kill(process.pid, 'SIGTERM'), 100);"}
    `;
    const result = await runCommand(process.execPath, ['--input-type=module', '-e', script], {
      check: false,
    });
    if (ending === 'exit') expect(result.code).toBe(0);
    else expect(result.signal).toBe('SIGTERM');
    return Number(result.stdout.trim());
  }

  it('are killed when it exits', async () => {
    const pid = await childPidAfter('exit');
    await waitFor(() => dead(pid), { what: `pid ${pid} to die`, timeoutMs: 5_000 });
  });

  it('are killed when it is terminated by SIGTERM, which still terminates it', async () => {
    const pid = await childPidAfter('SIGTERM');
    await waitFor(() => dead(pid), { what: `pid ${pid} to die`, timeoutMs: 5_000 });
  });
});

describe('work dirs', () => {
  it('are removed on cleanup, kept when asked or when OUTPOST_TEST_KEEP=1', async () => {
    const removed = await makeWorkDir('a b/c');
    expect(removed.path).toMatch(/\/a-b-c-[A-Za-z0-9]{6}$/);
    await removed.mkdir('x', 'y');
    expect(await removed.cleanup()).toBe(true);
    expect(existsSync(removed.path)).toBe(false);

    const kept = await makeWorkDir('kept');
    expect(await kept.cleanup({ keep: true })).toBe(false);
    expect(existsSync(kept.path)).toBe(true);
    expect(await kept.cleanup()).toBe(true);

    const previous = process.env.OUTPOST_TEST_KEEP;
    process.env.OUTPOST_TEST_KEEP = '1';
    try {
      const env = await makeWorkDir('env-kept');
      expect(await env.cleanup()).toBe(false);
      expect(existsSync(env.path)).toBe(true);
      delete process.env.OUTPOST_TEST_KEEP;
      expect(await env.cleanup()).toBe(true);
    } finally {
      if (previous === undefined) delete process.env.OUTPOST_TEST_KEEP;
      else process.env.OUTPOST_TEST_KEEP = previous;
    }
  });
});
