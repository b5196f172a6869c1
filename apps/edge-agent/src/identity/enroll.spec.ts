import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@outpost/signing/keys';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentError } from '../errors.js';
import type { HttpFetch } from '../http/node-http-fetch.js';
import { enroll } from './enroll.js';
import { loadIdentity } from './identity-store.js';

// Real parts: key generation, proof signing, files in a temporary directory. Fake: the
// ingest's `POST /api/v1/enroll`, answered as the real one answers.

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'enroll-spec-'));
  dirs.push(d);
  return join(d, 'data');
};

const token = (claims: Record<string, unknown>) =>
  `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

describe('enroll', () => {
  it('sends a fresh public key with a proof over the token jti, then writes the identity', async () => {
    const dataDir = await tempDir();
    const service = await generateKeyPair();
    let sent: { publicKey: { kid: string }; proof: string; token: string } | undefined;
    const fetchFake: HttpFetch = async (url, init) => {
      expect(url).toBe('https://ingest.example/api/v1/enroll');
      sent = JSON.parse(String(init?.body));
      return new Response(
        JSON.stringify({
          device: { id: 'gw-9', kind: 'gateway', gateway: null },
          kid: sent!.publicKey.kid,
          endpoints: {
            http: 'https://ingest.example',
            mqtt: {
              host: 'ingest.example',
              port: 1883,
              tlsPort: 8883,
              websocket: 'wss://ingest.example/mqtt',
            },
          },
          audience: 'outpost',
          jwks: { keys: [service.publicJwk] },
          releaseKeys: [],
        }),
        { status: 201 },
      );
    };
    const identity = await enroll({
      server: 'https://ingest.example',
      token: token({ jti: 'jti-0001-aaaa', sub: 'gw-9' }),
      dataDir,
      fetch: fetchFake,
    });
    expect(identity).toMatchObject({ deviceId: 'gw-9', kind: 'gateway', mqtt: { port: 1883 } });
    const proof = JSON.parse(Buffer.from(sent!.proof.split('.')[1]!, 'base64url').toString());
    expect(proof).toMatchObject({ jti: 'jti-0001-aaaa', sub: 'gw-9' });
    expect('d' in sent!.publicKey).toBe(false);
    expect((await stat(join(dataDir, 'device-key.json'))).mode & 0o777).toBe(0o600);
    const loaded = await loadIdentity(dataDir);
    expect(loaded.identity.kid).toBe(sent!.publicKey.kid);
    expect(JSON.parse(await readFile(join(dataDir, 'device-key.json'), 'utf8')).d).toBeDefined();
  });

  it('explains a used token, a malformed one, and an existing identity without spending the token', async () => {
    const dataDir = await tempDir();
    let calls = 0;
    const conflict: HttpFetch = async () => {
      calls++;
      return new Response(
        JSON.stringify({ status: 409, code: 'enrollment_used', detail: 'already used' }),
        {
          status: 409,
        },
      );
    };
    const err = await enroll({
      server: 'http://x',
      token: token({ jti: 'jti-0002-bbbb', sub: 'gw-1' }),
      dataDir,
      fetch: conflict,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).message).toMatch(/HTTP 409 enrollment_used: already used/);
    expect((err as AgentError).hint).toMatch(/create a new one/);
    await expect(
      enroll({ server: 'http://x', token: 'not-a-jwt', dataDir, fetch: conflict }),
    ).rejects.toThrow(/not an enrollment token/);
    expect(calls).toBe(1);
  });

  it('refuses a key file others can read', async () => {
    const dataDir = await tempDir();
    const { writeIdentity } = await import('./identity-store.js');
    const { chmod } = await import('node:fs/promises');
    const pair = await generateKeyPair();
    await writeIdentity(
      dataDir,
      {
        v: 1,
        deviceId: 'gw-1',
        kind: 'gateway',
        gateway: null,
        kid: pair.kid,
        server: 'http://x',
        mqtt: { host: 'x', port: 1883, tlsPort: null },
        audience: 'outpost',
        jwks: { keys: [pair.publicJwk as unknown as Record<string, unknown>] },
        releaseKeys: [],
        enrolledAt: new Date().toISOString(),
      },
      pair.privateJwk,
    );
    await chmod(join(dataDir, 'device-key.json'), 0o644);
    await expect(loadIdentity(dataDir)).rejects.toThrow(/readable by others/);
  });
});
