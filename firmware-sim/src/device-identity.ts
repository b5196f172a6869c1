import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { DEFAULT_AUDIENCE } from '@outpost/protocol/claims';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { type Jwks, parseJwks } from '@outpost/signing/jwks';
import { generateKeyPair } from '@outpost/signing/keys';
import { importSigningKey, type SigningKey } from '@outpost/signing/sign';
import { z } from 'zod';
import { type EnrollReply, OutpostApi } from './outpost-api.js';
import type { CredentialSource } from './scenario.js';

/**
 * Where a direct MQTT device's identity comes from (PROTOCOL.md §2): it enrolls itself
 * (an enrollment token, or one the simulator makes with the admin token), or it loads what
 * `outpost device credentials` wrote, or a private JWK. The private key is imported once.
 */
export interface DirectIdentity {
  deviceId: string;
  key: SigningKey;
  audience: string;
  /** The service JWKS, to verify commands; undefined when not known (a bare private key). */
  jwks: Jwks | undefined;
  /** The MQTT endpoint enrollment or the credentials named. */
  broker: string | undefined;
}

export interface IdentityContext {
  /** The service's HTTP URL, to enroll. */
  server: string | undefined;
  adminToken: string | undefined;
  /** Relative credential paths start here (the scenario file's directory). */
  baseDir: string;
  /** Set `payloadSigning: optional` on a device the simulator enrolls with the admin token. */
  unsigned: boolean;
  /** Epoch ms on the device's clock. */
  now: () => number;
}

export async function resolveIdentity(
  deviceId: string,
  source: CredentialSource,
  context: IdentityContext,
): Promise<DirectIdentity> {
  switch (source.kind) {
    case 'enroll':
    case 'token':
      return enroll(deviceId, source, context);
    case 'credentials':
      return fromCredentialsDir(deviceId, resolve(context.baseDir, source.dir));
    case 'key': {
      const key = await importSigningKey(await readJson(resolve(context.baseDir, source.file)));
      const jwks =
        source.jwksFile === undefined
          ? undefined
          : await parseJwks(await readJson(resolve(context.baseDir, source.jwksFile)));
      return {
        deviceId,
        key,
        audience: source.audience ?? DEFAULT_AUDIENCE,
        jwks,
        broker: undefined,
      };
    }
  }
}

async function enroll(
  deviceId: string,
  source: Extract<CredentialSource, { kind: 'enroll' | 'token' }>,
  context: IdentityContext,
): Promise<DirectIdentity> {
  if (context.server === undefined) {
    throw new Error('no server to enroll with (server: in the scenario, or --server)');
  }
  const api = new OutpostApi(context.server, context.adminToken);
  let token: string;
  let jti: string;
  if (source.kind === 'enroll') {
    ({ token, jti } = await api.createEnrollment(deviceId));
  } else {
    token = source.token;
    const claims = unverifiedClaims(token);
    if (claims.sub !== deviceId) {
      throw new Error(`the enrollment token is for "${claims.sub}"`);
    }
    jti = claims.jti;
  }
  // PROTOCOL.md §2 step 2: the key is made here and proves possession; only its public half leaves.
  const pair = await generateKeyPair('EdDSA');
  const key = await importSigningKey(pair.privateJwk);
  const { token: proof } = await signEnrollmentProof(key, {
    jti,
    deviceId,
    now: () => context.now() / 1000,
  });
  const reply = await api.enroll({ token, publicKey: pair.publicJwk, proof });
  if (source.kind === 'enroll' && context.unsigned) {
    await api.setPayloadSigning(deviceId, 'optional');
  }
  return identityFromReply(deviceId, key, reply);
}

async function identityFromReply(
  deviceId: string,
  key: SigningKey,
  reply: Pick<EnrollReply, 'audience' | 'jwks'> & {
    endpoints: { mqtt: { host: string; port: number } };
  },
): Promise<DirectIdentity> {
  const { host, port } = reply.endpoints.mqtt;
  return {
    deviceId,
    key,
    audience: reply.audience,
    jwks: await parseJwks(reply.jwks),
    broker: `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`,
  };
}

/** `credentials.json` as `outpost device credentials` writes it (the parts used here). */
const credentialsFileSchema = z.looseObject({
  v: z.literal(1),
  deviceId: z.string(),
  privateKeyFile: z.string().min(1),
  endpoints: z.looseObject({
    mqtt: z.looseObject({ host: z.string().min(1), port: z.int().positive() }),
  }),
  audience: z.string().min(1),
  jwks: z.looseObject({ keys: z.array(z.unknown()) }),
});

const CREDENTIALS_FILE = 'credentials.json';

async function fromCredentialsDir(deviceId: string, dir: string): Promise<DirectIdentity> {
  const path = join(dir, CREDENTIALS_FILE);
  const parsed = credentialsFileSchema.safeParse(await readJson(path));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${path}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  const file = parsed.data;
  if (file.deviceId !== deviceId) {
    throw new Error(`${path} is for device "${file.deviceId}", not "${deviceId}"`);
  }
  const keyPath = isAbsolute(file.privateKeyFile)
    ? file.privateKeyFile
    : join(dir, file.privateKeyFile);
  const key = await importSigningKey(await readJson(keyPath));
  return identityFromReply(deviceId, key, file);
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${path}: not JSON (${(err as Error).message})`);
  }
}

/** The claims a device needs from its enrollment token; it cannot verify it before enrolling. */
function unverifiedClaims(token: string): { sub: string; jti: string } {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {}
  const claims = z.looseObject({ sub: z.string(), jti: z.string() }).safeParse(json);
  if (!claims.success) throw new Error('the enrollment token is not a JWT with sub and jti');
  return claims.data;
}
