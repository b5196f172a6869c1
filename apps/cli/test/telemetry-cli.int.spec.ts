import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { signBatch } from '@outpost/signing/batch';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { generateKeyPair, type KeyPair } from '@outpost/signing/keys';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import { useServices } from '@outpost/test-kit/vitest';
import { beforeAll, describe, expect, it } from 'vitest';

// Real: the built `outpost` binary, a real ingest process; readings sent over HTTP with a
// real device JWT and signed batch. Mocked: nothing.

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('outpost telemetry query|tail (built binary, real ingest)', () => {
  const services = useServices();
  let ingest: IngestHandle;
  let pair: KeyPair;
  const env = () => ({
    ...process.env,
    OUTPOST_URL: ingest.url,
    OUTPOST_TOKEN: ingest.adminToken,
    OUTPOST_PROFILE: '/nonexistent/profile.json',
  });

  async function send(boot: string, records: unknown[]) {
    const jws = await signBatch(pair.privateJwk, { v: 1, boot, seq: [1, records.length], records });
    const { token } = await signDeviceJwt(pair.privateJwk, { deviceId: 'meter-1' });
    const res = await fetch(`${ingest.url}/api/v1/telemetry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/jose' },
      body: jws,
    });
    expect(res.status).toBe(200);
  }

  function run(args: string[]) {
    return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [MAIN, ...args], { env: env() });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (c) => (stdout += c));
      p.stderr.on('data', (c) => (stderr += c));
      p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  beforeAll(async () => {
    ingest = await services.add(startIngest());
    const headers = {
      authorization: `Bearer ${ingest.adminToken}`,
      'content-type': 'application/json',
    };
    const created = (await (
      await fetch(`${ingest.url}/api/v1/enrollments`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ deviceId: 'meter-1' }),
      })
    ).json()) as { token: string; jti: string };
    pair = await generateKeyPair();
    const { token: proof } = await signEnrollmentProof(pair.privateJwk, {
      jti: created.jti,
      deviceId: 'meter-1',
    });
    await fetch(`${ingest.url}/api/v1/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: created.token, publicKey: pair.publicJwk, proof }),
    });
    const t = Math.floor(Date.now() / 1000) - 120;
    await send('queryboot1', [
      { bt: t, n: 'kwh', u: 'kWh', v: 1 },
      { n: 'kwh', u: 'kWh', v: 2, t: 30 },
      { n: 'kwh', u: 'kWh', v: 4, t: 60 },
    ]);
  });

  it('queries raw and aggregated readings, as a table and as JSON', async () => {
    const table = await run(['telemetry', 'query', 'meter-1', '--metric', 'kwh', '--from', '-10m']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/VALUE/);
    expect(table.stdout.trim().split('\n')).toHaveLength(4);
    const json = await run([
      'telemetry',
      'query',
      'meter-1',
      '--metric',
      'kwh',
      '--from',
      '-10m',
      '--every',
      '1h',
      '--fn',
      'max',
      '--json',
    ]);
    const series = JSON.parse(json.stdout) as { points: { value: number | null }[] };
    expect(series.points.map((p) => p.value).filter((v) => v !== null)).toEqual([4]);
    const bad = await run([
      'telemetry',
      'query',
      'meter-1',
      '--metric',
      'kwh',
      '--from',
      'yesterday',
    ]);
    expect(bad.code).toBe(2);
  });

  it('tails readings as they are accepted', async () => {
    const p = spawn(
      process.execPath,
      [MAIN, 'telemetry', 'tail', '--device', 'meter-1', '--json'],
      { env: env() },
    );
    const lines = createInterface({ input: p.stdout });
    const first = new Promise<string>((resolve) => lines.once('line', resolve));
    // The stream is open once the process has connected; send until a line arrives.
    const timer = setInterval(
      () =>
        void send(`tailboot${Date.now() % 100000}`, [
          { bt: Math.floor(Date.now() / 1000), n: 'kwh', v: 9 },
        ]),
      300,
    );
    const line = await first;
    clearInterval(timer);
    p.kill('SIGINT');
    expect(JSON.parse(line)).toMatchObject({ device: 'meter-1', metric: 'kwh', value: 9 });
  });
});
