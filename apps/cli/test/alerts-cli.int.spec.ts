import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Real: the built `outpost` binary as a child process, the built ingest service as a process
// (test-kit) with SQLite in a temp dir, a device enrolled by `outpost device credentials`
// posting a signed batch over HTTP, and a webhook receiver on 127.0.0.1. Mocked: nothing.

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let ingest: IngestHandle;
let work: WorkDir;
let hook: { url: string; events: string[]; close(): Promise<void> };

function outpost(args: string[], token = ingest.adminToken): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      cwd: work.path,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: work.path,
        XDG_CONFIG_HOME: join(work.path, '.config'),
        OUTPOST_URL: ingest.url,
        OUTPOST_TOKEN: token,
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

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

async function until<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  ingest = await startIngest({ env: { INGEST_ALERT_TICK_MS: '100' } });
  work = await makeWorkDir('alerts-cli');
  const events: string[] = [];
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    events.push((JSON.parse(body) as { type: string }).type);
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hook = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    events,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
});

afterAll(async () => {
  await hook?.close();
  await ingest?.stop();
  await work?.cleanup();
});

describe('outpost rules and alerts', () => {
  it('adds a rule, sees it fire, lists it and acknowledges it', async () => {
    const refused = await outpost([
      'rules',
      'add',
      '--metric',
      'temperature',
      '--above',
      '90',
      '--clear-below',
      '95',
    ]);
    expect(refused.code).toBe(1);
    expect(lines(refused.stderr)).toEqual([
      'error: rule refused: clearBelow 95 is above the limit 90: an alert raised above 90 would clear while still above it; use a clearBelow at or below 90 (rule_impossible)',
    ]);

    const added = await outpost([
      'rules',
      'add',
      '--metric',
      'temperature',
      '--above',
      '90',
      '--clear-below',
      '85',
      '--for',
      '0s',
      '--device',
      'boiler-7',
      '--severity',
      'critical',
      '--webhook',
      hook.url,
    ]);
    expect(added.stderr).toContain('the webhook secret is shown only now');
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^condition: +temperature > 90, clears < 85$/m);
    expect(added.stdout).toMatch(/^scope: +devices=boiler-7$/m);
    expect(added.stdout).toMatch(/^webhook secret: +whsec_[\w-]{43}$/m);

    const list = await outpost(['rules', 'list']);
    expect(list.code).toBe(0);
    expect(lines(list.stdout)[0]).toMatch(/^ID +NAME +CONDITION +SCOPE +SEVERITY +ENABLED$/);
    expect(list.stdout).toMatch(/temperature > 90, clears < 85 +devices=boiler-7 +critical +yes/);
    expect(list.stdout).not.toContain('whsec_');

    // A device, enrolled by the CLI, posts a reading over the limit.
    const dir = join(work.path, 'boiler-7');
    expect((await outpost(['device', 'credentials', 'boiler-7', '--out', dir])).code).toBe(0);
    const key = JSON.parse(await readFile(join(dir, 'device-key.json'), 'utf8'));
    const { token } = await signDeviceJwt(key, { deviceId: 'boiler-7' });
    const jws = await signBatch(key, {
      v: 1,
      boot: 'cliboot01',
      seq: [1, 1],
      records: [{ bt: Date.now() / 1000, n: 'temperature', v: 93.5 }],
    });
    const posted = await fetch(`${ingest.url}/api/v1/telemetry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/jose' },
      body: jws,
    });
    expect(posted.status).toBe(200);

    const firing = await until(async () => {
      const r = await outpost(['alerts', 'list', '--state', 'firing', '--json']);
      const items = (JSON.parse(r.stdout) as { items: { id: string; device: string }[] }).items;
      return items.find((a) => a.device === 'boiler-7');
    }, 'the alert firing');
    const table = await outpost(['alerts', 'list', '--state', 'open']);
    expect(table.code).toBe(0);
    expect(lines(table.stdout)[0]).toMatch(/^ID +STATE +SEVERITY +DEVICE +RULE +SINCE +SUMMARY$/);
    expect(table.stdout).toContain(
      `${firing.id}  firing  critical  boiler-7  temperature > 90, clears < 85`,
    );
    expect(table.stdout).toContain('temperature on boiler-7 is 93.5, above 90');

    const viewer = JSON.parse(
      (await outpost(['token', 'create', '--name', 'wall', '--role', 'viewer', '--json'])).stdout,
    ) as { token: string };
    const denied = await outpost(['alerts', 'ack', firing.id], viewer.token);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain('(role_required)');

    const acked = await outpost(['alerts', 'ack', firing.id]);
    expect(acked.code).toBe(0);
    expect(acked.stdout).toBe(
      `acknowledged ${firing.id} (temperature > 90, clears < 85 on boiler-7) as bootstrap\n`,
    );
    expect((await outpost(['alerts', 'ack', firing.id])).code).toBe(0);
    expect((await outpost(['alerts', 'list', '--state', 'firing'])).stdout).toContain(
      'firing (ack)',
    );

    await until(async () => (hook.events.length >= 2 ? true : undefined), 'webhooks');
    expect(hook.events).toEqual(['alert.firing', 'alert.acknowledged']);
  });

  it('refuses bad flags before asking the server', async () => {
    for (const args of [
      ['rules', 'add', '--metric', 'x'],
      ['rules', 'add', '--metric', 'x', '--above', 'ninety'],
      ['rules', 'add', '--offline', '5m', '--metric', 'x'],
      ['rules', 'add', '--metric', 'x', '--above', '1', '--webhook', 'ftp://example.com/'],
      ['alerts', 'list', '--state', 'burning'],
      ['alerts', 'ack', 'bad id'],
    ]) {
      const r = await outpost(args);
      expect(r.code, args.join(' ')).toBe(2);
    }
    const none = await outpost(['alerts', 'ack', 'no-such-alert']);
    expect(none.code).toBe(1);
    expect(lines(none.stderr)).toEqual([
      'error: alert "no-such-alert" does not exist (alert_not_found)',
    ]);
  });
});
