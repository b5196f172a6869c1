import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Real: the built `outpost` binary as a child process and a real ingest process (test-kit)
// on free ports with SQLite and artifacts in a temp dir; the rollout timer runs on the
// wall clock. The devices are enrolled but never connect, so their offers time out: the
// rollouts end on the service's own decisions. Mocked: nothing.

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let ingest: IngestHandle;
let work: WorkDir;
let home: string;

function outpost(args: string[], env: Record<string, string> = admin()): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: home,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: home,
        XDG_CONFIG_HOME: join(home, '.config'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const admin = () => ({ OUTPOST_URL: ingest.url, OUTPOST_TOKEN: ingest.adminToken });
const json = <T>(r: Result): T => JSON.parse(r.stdout) as T;

beforeAll(async () => {
  ingest = await startIngest({
    env: { INGEST_OTA_TICK_MS: '100' },
  });
  work = await makeWorkDir('cli-ota');
  home = await work.mkdir('home');
});

afterAll(async () => {
  await ingest?.stop();
  await work?.cleanup();
});

describe('outpost keys, firmware and rollout', () => {
  let firmwareId: string;
  const file = () => join(home, 'boiler-1.1.0.bin');

  it('makes a release key, trusts its public half, signs offline and uploads', async () => {
    const key = join(home, 'release.json');
    const generated = await outpost(['keys', 'generate', '--out', key, '--json']);
    expect(generated.code).toBe(0);
    const { kid } = json<{ kid: string }>(generated);

    // The private key is refused where a public one belongs, before any request.
    const wrong = await outpost(['keys', 'add', key]);
    expect([wrong.code, wrong.stderr.trim()]).toEqual([
      1,
      `error: ${key} is a private key: give the public half (FILE.pub.json); the private key never leaves this machine`,
    ]);
    const added = await outpost(['keys', 'add', join(home, 'release.pub.json'), '--name', 'ci']);
    expect(added.code).toBe(0);
    expect(added.stdout.trim()).toBe(`trusted release key ${kid} (ci)`);
    const listed = await outpost(['keys', 'list']);
    expect(listed.stdout).toMatch(new RegExp(`^${kid}\\s+EdDSA\\s+ci\\s+trusted`, 'm'));

    await writeFile(file(), randomBytes(300_000));
    // Signing is offline: no server, no token.
    const signed = await outpost(
      [
        'firmware',
        'sign',
        file(),
        '--key',
        key,
        '--name',
        'Boiler controller',
        '--component',
        'main',
        '--version',
        '1.1.0',
        '--hardware',
        'sim-a',
        '--json',
      ],
      {},
    );
    expect(signed.stderr).toBe('');
    expect(signed.code).toBe(0);
    const sign = json<{ manifest: string; kid: string; payload: { size: number; sha256: string } }>(
      signed,
    );
    expect(sign).toMatchObject({ manifest: `${file()}.jws`, kid, payload: { size: 300_000 } });
    const again = await outpost(
      [
        'firmware',
        'sign',
        file(),
        '--key',
        key,
        '--name',
        'x',
        '--component',
        'main',
        '--version',
        '1.1.0',
        '--hardware',
        'sim-a',
      ],
      {},
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');

    const uploaded = await outpost([
      'firmware',
      'upload',
      file(),
      '--manifest',
      `${file()}.jws`,
      '--json',
    ]);
    expect(uploaded.stderr).toBe('');
    expect(uploaded.code).toBe(0);
    const firmware = json<{ id: string; sha256: string; kid: string }>(uploaded);
    expect(firmware).toMatchObject({ sha256: sign.payload.sha256, kid });
    firmwareId = firmware.id;
    const stored = await readFile(join(ingest.dataDir, 'firmware', firmware.sha256));
    expect(stored.equals(await readFile(file()))).toBe(true);

    const list = await outpost(['firmware', 'list']);
    expect(list.stdout).toMatch(
      new RegExp(
        `^${firmwareId}\\s+main\\s+1\\.1\\.0\\s+Boiler controller\\s+sim-a\\s+293\\.0 KiB`,
        'm',
      ),
    );
  });

  it('refuses a changed file before uploading, and the server refuses an unknown signer', async () => {
    const changed = join(home, 'changed.bin');
    const bytes = await readFile(file());
    bytes[0] = bytes[0]! ^ 1;
    await writeFile(changed, bytes);
    const local = await outpost(['firmware', 'upload', changed, '--manifest', `${file()}.jws`]);
    expect(local.code).toBe(1);
    expect(local.stderr).toContain('is not the artifact its manifest describes (sha256 differs)');

    const stranger = join(home, 'stranger.json');
    await outpost(['keys', 'generate', '--out', stranger]);
    const other = join(home, 'other.bin');
    await writeFile(other, randomBytes(1000));
    await outpost(
      [
        'firmware',
        'sign',
        other,
        '--key',
        stranger,
        '--name',
        'x',
        '--component',
        'main',
        '--version',
        '9.9.9',
        '--hardware',
        'sim-a',
      ],
      {},
    );
    const refused = await outpost(['firmware', 'upload', other, '--manifest', `${other}.jws`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(
      'error: the manifest is not signed by a registered release key (release_key_unknown)',
    );
  });

  it('runs a rollout, follows it with --watch to its end, and shows why devices failed', async () => {
    for (const id of ['ota-1', 'ota-2']) {
      const r = await outpost(['device', 'credentials', id, '--out', join(home, id)]);
      expect(r.code).toBe(0);
    }
    const created = await outpost([
      'rollout',
      'create',
      '--firmware',
      firmwareId,
      '--target',
      'device=ota-1',
      '--target',
      'device=ota-2',
      '--waves',
      '50,100',
      '--soak',
      '0s',
      // Long enough that the rollout is still running when `--watch` starts on a loaded
      // machine: its first frame must show a running rollout.
      '--offer-timeout',
      '5s',
      '--abort-failure-rate',
      '1',
      '--json',
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const rollout = json<{ id: string; status: string; waves: unknown[] }>(created);
    expect(rollout).toMatchObject({ status: 'running' });
    expect(rollout.waves).toHaveLength(2);

    const watched = await outpost(['rollout', 'status', rollout.id, '--watch']);
    expect(watched.stderr).toBe('');
    expect(watched.code).toBe(0);
    const lines = watched.stdout.trim().split('\n');
    expect(lines.at(-1)).toBe(`rollout ${rollout.id}: completed, wave 2/2 done, 0 ok, 2 failed`);
    expect(lines[0]).toMatch(new RegExp(`^rollout ${rollout.id}: running, wave [12]/2`));

    const status = await outpost(['rollout', 'status', rollout.id]);
    expect(status.stdout).toContain(`rollout ${rollout.id}: main 1.1.0, completed`);
    expect(status.stdout).toMatch(/^ {2}wave {2}1 {3}50% {2}1 device {3}\[#{20}\] {2}done/m);
    expect(status.stdout).toMatch(
      /^failed devices:\n {2}ota-\d {2}failed {2}timeout\n {2}ota-\d {2}failed {2}timeout$/m,
    );
  });

  it('ends --watch with an error when the rollout aborts itself', async () => {
    await outpost(['device', 'credentials', 'ota-3', '--out', join(home, 'ota-3')]);
    const created = await outpost([
      'rollout',
      'create',
      '--firmware',
      firmwareId,
      '--target',
      'device=ota-3',
      '--waves',
      '100',
      '--offer-timeout',
      '1s',
      '--abort-failure-rate',
      '0.5',
      '--min-devices',
      '1',
      '--json',
    ]);
    const { id } = json<{ id: string }>(created);
    const watched = await outpost(['rollout', 'status', id, '--watch', '--json']);
    expect(watched.code).toBe(1);
    const frames = watched.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{"'))
      .map((l) => JSON.parse(l) as { status: string });
    expect(frames.at(-1)).toMatchObject({ status: 'aborted' });
    expect(watched.stderr).toContain(
      `error: rollout ${id} aborted: failure rate 100% (1 of 1 finished devices) exceeds 50%`,
    );
  });

  it('pauses, resumes and cancels; a finished rollout cannot be changed', async () => {
    for (const id of ['ota-4', 'ota-5']) {
      await outpost(['device', 'credentials', id, '--out', join(home, id)]);
    }
    const created = await outpost([
      'rollout',
      'create',
      '--firmware',
      firmwareId,
      '--target',
      'device=ota-4',
      '--target',
      'device=ota-5',
      '--waves',
      '50,100',
      '--soak',
      '1h',
      '--json',
    ]);
    const { id } = json<{ id: string }>(created);
    const paused = await outpost(['rollout', 'pause', id]);
    expect(paused.stdout).toMatch(new RegExp(`^rollout ${id}: paused, wave 1/2`));
    const resumed = await outpost(['rollout', 'resume', id]);
    expect(resumed.stdout).toMatch(new RegExp(`^rollout ${id}: running`));
    const cancelled = await outpost(['rollout', 'cancel', id]);
    expect(cancelled.stdout).toMatch(new RegExp(`^rollout ${id}: cancelled`));
    const refused = await outpost(['rollout', 'resume', id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('(rollout_finished)');

    const list = await outpost(['rollout', 'list', '--status', 'cancelled']);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+main\\s+1\\.1\\.0\\s+cancelled\\s+1/2`, 'm'));
    const bad = await outpost([
      'rollout',
      'create',
      '--firmware',
      firmwareId,
      '--target',
      'ota-4',
      '--waves',
      '100',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected tag=KEY=VALUE, device=ID or gateway=ID');
  });
});
