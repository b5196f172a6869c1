import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { thumbprint } from '@outpost/signing/keys';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { freePort } from '@outpost/test-kit/ports';
import { makeWorkDir, type WorkDir } from '@outpost/test-kit/workdir';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

// Real: the built `outpost` binary as a child process, a real ingest process (test-kit) on
// free ports with SQLite in a temp dir, and a recording HTTP proxy between them so the test
// sees every byte the CLI sends. Mocked: nothing.

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Forwards every request to `target` and keeps a copy of it. */
async function startRecorder(target: string) {
  const requests: Recorded[] = [];
  const hopByHop = new Set(['host', 'connection', 'content-length', 'transfer-encoding']);
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body: body.toString('utf8'),
    });
    const headers = Object.entries(req.headers).flatMap(([k, v]) =>
      hopByHop.has(k) || v === undefined ? [] : [[k, String(v)] as [string, string]],
    );
    try {
      const upstream = await fetch(`${target}${req.url}`, {
        method: req.method ?? 'GET',
        headers,
        ...(body.length > 0 ? { body } : {}),
        redirect: 'manual',
      });
      const answer = Buffer.from(await upstream.arrayBuffer());
      const out: Record<string, string> = {};
      upstream.headers.forEach((v, k) => {
        if (!hopByHop.has(k) && k !== 'content-encoding') out[k] = v;
      });
      res.writeHead(upstream.status, out).end(answer);
    } catch {
      res.writeHead(502).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let ingest: IngestHandle;
let recorder: Awaited<ReturnType<typeof startRecorder>>;
let work: WorkDir;
let home: string;
let n = 0;

/** Runs `node dist/main.js …` with a private HOME and only the environment given. */
function outpost(args: string[], env: Record<string, string> = {}): Promise<Result> {
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

/** Connected through the recorder with the admin token from the environment. */
const admin = () => ({ OUTPOST_URL: recorder.url, OUTPOST_TOKEN: ingest.adminToken });

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

async function deviceCount(): Promise<number> {
  const r = await outpost(['device', 'list', '--all', '--json'], admin());
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { items: unknown[] }).items.length;
}

beforeAll(async () => {
  ingest = await startIngest();
  recorder = await startRecorder(ingest.url);
  work = await makeWorkDir('cli-int');
});

afterAll(async () => {
  await recorder?.close();
  await ingest?.stop();
  await work?.cleanup();
});

beforeEach(async () => {
  home = await work.mkdir(`home-${++n}`);
});

describe('outpost login', () => {
  it('checks the token and writes the profile 0600 in a 0700 directory, never printing the token', async () => {
    const r = await outpost(['login', '--url', recorder.url, '--token', ingest.adminToken]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`logged in to ${recorder.url}`);
    expect(r.stdout + r.stderr).not.toContain(ingest.adminToken);

    const profile = join(home, '.config', 'outpost', 'profile.json');
    expect(await mode(profile)).toBe(0o600);
    expect(await mode(join(home, '.config', 'outpost'))).toBe(0o700);
    expect(JSON.parse(await readFile(profile, 'utf8'))).toEqual({
      url: recorder.url,
      token: ingest.adminToken,
    });

    const list = await outpost(['device', 'list', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toHaveProperty('items');
  });

  it('writes to OUTPOST_PROFILE when set', async () => {
    const path = join(home, 'elsewhere', 'p.json');
    const r = await outpost(['login', '--url', recorder.url, '--token', ingest.adminToken], {
      OUTPOST_PROFILE: path,
    });
    expect(r.code).toBe(0);
    expect(await mode(path)).toBe(0o600);
    await expect(stat(join(home, '.config', 'outpost', 'profile.json'))).rejects.toThrow();
  });

  it('refuses a bad token with one line and writes nothing', async () => {
    const r = await outpost(['login', '--url', recorder.url, '--token', 'not-the-token-at-all']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([
      'error: the server refused the token (token_invalid): check the --token value',
    ]);
    await expect(stat(join(home, '.config', 'outpost'))).rejects.toThrow();
  });

  it('says how to log in when there is no server or token', async () => {
    const r = await outpost(['device', 'list']);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      'error: not logged in: run `outpost login --url URL --token TOKEN` or set OUTPOST_URL and OUTPOST_TOKEN',
    ]);
  });

  it('lets flags win over the environment', async () => {
    const r = await outpost(['device', 'list', '--json', '--token', ingest.adminToken], {
      OUTPOST_URL: recorder.url,
      OUTPOST_TOKEN: 'a-wrong-token-from-env',
    });
    expect(r.code).toBe(0);
  });
});

describe('outpost device enroll-token', () => {
  it('prints the token and its expiry', async () => {
    const r = await outpost(
      ['device', 'enroll-token', 'enroll-a', '--tag', 'site=x', '--ttl', '2h'],
      admin(),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^token: +eyJ[\w-]+\.[\w-]+\.[\w-]+$/m);
    expect(r.stdout).toMatch(/^expires: .*\(in (2h|1h59m5\ds)\)$/m);

    const json = await outpost(['device', 'enroll-token', 'enroll-b', '--json'], admin());
    expect(json.code).toBe(0);
    const created = JSON.parse(json.stdout) as {
      token: string;
      deviceId: string;
      expiresAt: string;
    };
    expect(created.deviceId).toBe('enroll-b');
    expect(Date.parse(created.expiresAt) - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
  });

  it('prints a QR code of the token with --qr', async () => {
    const r = await outpost(['device', 'enroll-token', 'enroll-qr', '--qr'], admin());
    expect(r.code).toBe(0);
    const block = lines(r.stdout).filter((l) => /[▀▄█]/.test(l));
    expect(block.length).toBeGreaterThan(20);
  });

  it('refuses a bad device id before any request, with exit code 2 and the rule', async () => {
    const before = recorder.requests.length;
    const r = await outpost(['device', 'enroll-token', 'Bad_ID'], admin());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('device id must match ^[a-z0-9][a-z0-9._-]{0,63}$');
    expect(recorder.requests.length).toBe(before);
  });

  it('refuses a token without the role, saying so', async () => {
    const issued = await outpost(
      ['token', 'create', '--name', 'viewer-only', '--role', 'viewer', '--json'],
      admin(),
    );
    const { token } = JSON.parse(issued.stdout) as { token: string };
    const r = await outpost(['device', 'enroll-token', 'enroll-c'], {
      OUTPOST_URL: recorder.url,
      OUTPOST_TOKEN: token,
    });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      'error: this needs the role technician (role_required): use a token with the needed role; an admin can issue one with `outpost token create`',
    ]);
  });
});

describe('outpost device credentials', () => {
  it('makes the key here, enrolls the device and writes owner-only files', async () => {
    const out = join(home, 'creds');
    const before = recorder.requests.length;
    const r = await outpost(
      ['device', 'credentials', 'cred-1', '--out', out, '--tag', 'site=lab', '--json'],
      admin(),
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { kid: string; deviceId: string };

    expect(await mode(out)).toBe(0o700);
    expect((await readdir(out)).sort()).toEqual(['credentials.json', 'device-key.json']);
    expect(await mode(join(out, 'device-key.json'))).toBe(0o600);
    const privateJwk = JSON.parse(await readFile(join(out, 'device-key.json'), 'utf8')) as {
      d: string;
      kty: 'OKP';
      crv: 'Ed25519';
      x: string;
    };
    const kid = await thumbprint(privateJwk);
    expect(result.kid).toBe(kid);

    const credentials = JSON.parse(await readFile(join(out, 'credentials.json'), 'utf8'));
    expect(credentials).toMatchObject({
      deviceId: 'cred-1',
      kid,
      alg: 'EdDSA',
      audience: 'outpost',
      endpoints: { http: ingest.url },
      publicKey: { kty: 'OKP', crv: 'Ed25519', x: privateJwk.x },
    });
    expect(credentials.jwks.keys.length).toBeGreaterThan(0);
    expect(Array.isArray(credentials.releaseKeys)).toBe(true);
    expect(JSON.stringify(credentials)).not.toContain(privateJwk.d);
    expect(credentials.publicKey).not.toHaveProperty('d');

    // The private key never left this machine: no request carried it, in any form.
    const sent = recorder.requests.slice(before);
    expect(sent.map((q) => `${q.method} ${q.url}`)).toEqual([
      'POST /api/v1/enrollments',
      'POST /api/v1/enroll',
    ]);
    for (const q of sent) {
      expect(`${q.url}\n${JSON.stringify(q.headers)}\n${q.body}`).not.toContain(privateJwk.d);
    }
    const enroll = JSON.parse(sent[1]!.body) as { publicKey: Record<string, unknown> };
    expect(enroll.publicKey).not.toHaveProperty('d');
    expect(sent[1]!.headers.authorization).toBeUndefined();

    const show = await outpost(['device', 'show', 'cred-1', '--json'], admin());
    expect(show.code).toBe(0);
    const device = JSON.parse(show.stdout) as {
      status: string;
      tags: object;
      keys: { kid: string }[];
    };
    expect(device.status).toBe('active');
    expect(device.tags).toEqual({ site: 'lab' });
    expect(device.keys.map((k) => k.kid)).toEqual([kid]);
  });

  it('makes ES256 keys too', async () => {
    const out = join(home, 'creds');
    const r = await outpost(
      ['device', 'credentials', 'cred-es', '--out', out, '--alg', 'ES256', '--json'],
      admin(),
    );
    expect(r.code).toBe(0);
    const jwk = JSON.parse(await readFile(join(out, 'device-key.json'), 'utf8'));
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
  });

  it('refuses to replace existing files before asking the server for anything', async () => {
    const out = join(home, 'creds');
    await mkdir(out);
    await writeFile(join(out, 'device-key.json'), 'precious');
    const before = recorder.requests.length;
    const r = await outpost(['device', 'credentials', 'cred-2', '--out', out], admin());
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain('already exists');
    expect(recorder.requests.length).toBe(before);
    expect(await readFile(join(out, 'device-key.json'), 'utf8')).toBe('precious');
  });

  it('leaves no key behind when enrollment is refused', async () => {
    const out = join(home, 'creds');
    const r = await outpost(
      ['device', 'credentials', 'cred-3', '--out', out, '--gateway', 'no-such-gw'],
      admin(),
    );
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['error: gateway no-such-gw does not exist (gateway_invalid)']);
    expect(await readdir(out)).toEqual([]);
  });
});

describe('outpost device import and list', () => {
  it('imports a CSV and lists it by tag', async () => {
    const file = join(home, 'devices.csv');
    await writeFile(
      file,
      [
        'id,kind,gateway,tags',
        'imp-gw,gateway,,site=north',
        'imp-1,device,imp-gw,site=north;line=1',
        'imp-2,device,,site=south',
      ].join('\n'),
    );
    const r = await outpost(['device', 'import', file], admin());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('imported 3 devices\n');

    const north = await outpost(['device', 'list', '--tag', 'site=north', '--json'], admin());
    expect(north.code).toBe(0);
    const page = JSON.parse(north.stdout) as { items: { id: string; gateway: string | null }[] };
    expect(page.items.map((d) => d.id)).toEqual(['imp-1', 'imp-gw']);
    expect(page.items.find((d) => d.id === 'imp-1')?.gateway).toBe('imp-gw');

    const both = await outpost(
      ['device', 'list', '--tag', 'site=north', '--tag', 'line=1'],
      admin(),
    );
    expect(both.code).toBe(0);
    expect(lines(both.stdout)).toHaveLength(2);
    expect(lines(both.stdout)[0]).toMatch(/^ID +KIND +STATE +GATEWAY +LAST SEEN +TAGS$/);
    expect(lines(both.stdout)[1]).toMatch(
      /^imp-1 +device +never_connected +imp-gw +never +line=1,site=north$/,
    );

    const gw = await outpost(
      ['device', 'list', '--kind', 'gateway', '--search', 'imp', '--json'],
      admin(),
    );
    expect((JSON.parse(gw.stdout) as { items: { id: string }[] }).items.map((d) => d.id)).toEqual([
      'imp-gw',
    ]);
  });

  it('imports JSON', async () => {
    const file = join(home, 'devices.json');
    await writeFile(file, JSON.stringify([{ id: 'json-1', tags: { site: 'json' } }]));
    const r = await outpost(['device', 'import', file, '--json'], admin());
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ imported: 1 });
  });

  it('refuses 10,000 rows with one bad one, names the line and writes nothing', async () => {
    const before = await deviceCount();
    const rows = ['id,tags'];
    for (let i = 0; i < 10_000; i++) rows.push(`bulk-${String(i).padStart(5, '0')},site=s${i % 7}`);
    rows[6001] = 'Bulk_Bad,site=s1'; // line 6002 of the file
    const file = join(home, 'bulk.csv');
    await writeFile(file, `${rows.join('\n')}\n`);

    const r = await outpost(['device', 'import', file], admin());
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([
      `error: import of ${file} refused, nothing was written: 1 error: fix the lines below and import the whole file again`,
      '  line 6002 (Bulk_Bad): id: device id must match ^[a-z0-9][a-z0-9._-]{0,63}$',
    ]);
    expect(await deviceCount()).toBe(before);
  });

  it('lists at most 20 refused rows, then how many more', async () => {
    const rows = ['id'];
    for (let i = 0; i < 30; i++) rows.push(`BAD${i}`);
    const file = join(home, 'bad.csv');
    await writeFile(file, rows.join('\n'));
    const r = await outpost(['device', 'import', file], admin());
    expect(r.code).toBe(1);
    const err = lines(r.stderr);
    expect(err).toHaveLength(22);
    expect(err[1]).toBe('  line 2 (BAD0): id: device id must match ^[a-z0-9][a-z0-9._-]{0,63}$');
    expect(err[21]).toBe('  and 10 more');
  });

  it('pages through everything with --all', async () => {
    const file = join(home, 'page.csv');
    await writeFile(
      file,
      ['id,tags', ...Array.from({ length: 7 }, (_, i) => `page-${i},batch=paged`)].join('\n'),
    );
    expect((await outpost(['device', 'import', file], admin())).code).toBe(0);
    const r = await outpost(
      ['device', 'list', '--tag', 'batch=paged', '--limit', '3', '--all', '--json'],
      admin(),
    );
    expect(r.code).toBe(0);
    const page = JSON.parse(r.stdout) as { items: { id: string }[]; next: string | null };
    expect(page.items.map((d) => d.id)).toEqual(Array.from({ length: 7 }, (_, i) => `page-${i}`));
    expect(page.next).toBeNull();

    const first = await outpost(
      ['device', 'list', '--tag', 'batch=paged', '--limit', '3'],
      admin(),
    );
    expect(lines(first.stdout)).toHaveLength(4);
    expect(first.stderr).toContain('more devices match');
  });

  it('refuses a file of unknown format with exit code 2', async () => {
    const r = await outpost(['device', 'import', join(home, 'devices.txt')], admin());
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      `error: cannot tell the format of ${join(home, 'devices.txt')}: name the file *.csv or *.json`,
    ]);
  });
});

describe('outpost device show and revoke', () => {
  it('revokes a device', async () => {
    expect((await outpost(['device', 'enroll-token', 'rev-1'], admin())).code).toBe(0);
    const r = await outpost(['device', 'revoke', 'rev-1'], admin());
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('revoked rev-1\n');
    const show = await outpost(['device', 'show', 'rev-1'], admin());
    expect(show.stdout).toMatch(/^status: +revoked$/m);
    expect(show.stdout).toMatch(/^revoked: +\d{4}-/m);
    const again = await outpost(['device', 'enroll-token', 'rev-1'], admin());
    expect(again.code).toBe(1);
    expect(lines(again.stderr)).toEqual(['error: device rev-1 is revoked (device_revoked)']);
  });

  it('says when a device does not exist', async () => {
    const r = await outpost(['device', 'show', 'nobody'], admin());
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual(['error: device "nobody" does not exist (device_not_found)']);
  });
});

describe('outpost keys generate', () => {
  it('writes the private key 0600 and the public key beside it, and refuses to overwrite', async () => {
    const file = join(home, 'keys', 'release.json');
    const r = await outpost(['keys', 'generate', '--out', file, '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { kid: string; alg: string; publicKey: string };
    expect(result.alg).toBe('EdDSA');
    expect(result.publicKey).toBe(join(home, 'keys', 'release.pub.json'));

    const privateJwk = JSON.parse(await readFile(file, 'utf8'));
    const publicJwk = JSON.parse(await readFile(result.publicKey, 'utf8'));
    expect(privateJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: result.kid });
    expect(typeof privateJwk.d).toBe('string');
    expect(publicJwk).not.toHaveProperty('d');
    expect(await thumbprint(publicJwk)).toBe(result.kid);
    expect(await mode(file)).toBe(0o600);
    expect(await mode(result.publicKey)).toBe(0o644);

    const again = await outpost(['keys', 'generate', '--out', file]);
    expect(again.code).toBe(1);
    expect(lines(again.stderr)).toEqual([
      `error: ${file} already exists: choose another --out, or pass --force to replace the key (the old one is lost)`,
    ]);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(privateJwk);

    const forced = await outpost(['keys', 'generate', '--out', file, '--force', '--alg', 'ES256']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/^kid: +\S{43}$/m);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(await mode(file)).toBe(0o600);
  });
});

describe('outpost token', () => {
  it('creates, lists and revokes API tokens', async () => {
    const created = await outpost(
      [
        'token',
        'create',
        '--name',
        'ci-bot',
        '--role',
        'viewer',
        'technician',
        '--ttl',
        '30d',
        '--json',
      ],
      admin(),
    );
    expect(created.code).toBe(0);
    const issued = JSON.parse(created.stdout) as { id: string; token: string; roles: string[] };
    expect(issued.roles).toEqual(['viewer', 'technician']);

    const asBot = { OUTPOST_URL: recorder.url, OUTPOST_TOKEN: issued.token };
    expect((await outpost(['device', 'list'], asBot)).code).toBe(0);

    const list = await outpost(['token', 'list'], admin());
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(`^${issued.id} +ci-bot +viewer,technician +active `, 'm'),
    );
    expect(list.stdout).not.toContain(issued.token);

    const revoked = await outpost(['token', 'revoke', issued.id], admin());
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe(`revoked token ${issued.id} (ci-bot)\n`);

    const refused = await outpost(['device', 'list'], asBot);
    expect(refused.code).toBe(1);
    expect(lines(refused.stderr)).toEqual([
      'error: the server refused the token (token_revoked): check OUTPOST_TOKEN or log in again',
    ]);
  });
});

describe('scripts and failures', () => {
  it('prints parseable JSON for results and for errors', async () => {
    for (const args of [
      ['device', 'list'],
      ['token', 'list'],
      ['device', 'show', 'cred-1'],
    ]) {
      const r = await outpost([...args, '--json'], admin());
      expect(r.code).toBe(0);
      expect(() => JSON.parse(r.stdout)).not.toThrow();
    }
    const r = await outpost(['device', 'show', 'nobody', '--json'], admin());
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'device_not_found' } });
  });

  it('says in one line that an unreachable server cannot be reached', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await outpost(['device', 'list'], {
      OUTPOST_URL: url,
      OUTPOST_TOKEN: 'whatever-token',
    });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `error: cannot reach ${url}: connection refused: check the URL (--url or OUTPOST_URL) and that the service is running`,
    ]);
  });

  it('exits 2 on usage errors', async () => {
    for (const args of [
      ['device', 'list', '--tag', 'nokey'],
      ['device', 'list', '--status', 'asleep'],
      ['device', 'enroll-token', 'x', '--ttl', 'tomorrow'],
      ['device', 'list', '--bogus'],
      ['keys', 'generate'],
      ['device'],
    ]) {
      const r = await outpost(args, admin());
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/error|Usage/);
    }
    expect((await outpost(['--help'])).code).toBe(0);
    expect((await outpost(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
