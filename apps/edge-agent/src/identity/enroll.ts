import type { SigningAlgorithm } from '@outpost/protocol/claims';
import { deviceIdSchema, deviceKindSchema } from '@outpost/protocol/ids';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { parseJwks } from '@outpost/signing/jwks';
import { generateKeyPair } from '@outpost/signing/keys';
import { z } from 'zod';
import { AgentError } from '../errors.js';
import { type HttpFetch, type HttpResponse, nodeHttpFetch } from '../http/node-http-fetch.js';
import { type Identity, identityExists, writeIdentity } from './identity-store.js';

/**
 * PROTOCOL.md §2 from the gateway's side: make the key pair here, prove possession over the
 * token's `jti`, enroll, and keep the reply (endpoints, service JWKS, release keys).
 */
export interface EnrollOptions {
  server: string;
  token: string;
  dataDir: string;
  alg?: SigningAlgorithm;
  /** Replace an existing identity. */
  force?: boolean;
  /** Epoch ms. */
  now?: () => number;
  fetch?: HttpFetch;
}

/** What the agent reads from an enrollment token before it is verified by the server. */
const tokenClaimsSchema = z.object({ jti: z.string().min(1), sub: deviceIdSchema });

const enrollReplySchema = z.object({
  device: z.object({
    id: deviceIdSchema,
    kind: deviceKindSchema,
    gateway: deviceIdSchema.nullable().optional(),
  }),
  kid: z.string().min(1),
  endpoints: z.object({
    http: z.url(),
    mqtt: z.object({
      host: z.string().min(1),
      port: z.number().int(),
      tlsPort: z.number().int().nullable(),
    }),
  }),
  audience: z.string().min(1),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }),
  releaseKeys: z.array(z.unknown()).default([]),
});

/** The claims of a JWT, read without verifying it (the server verifies it). */
function readTokenClaims(token: string): z.infer<typeof tokenClaimsSchema> {
  const part = token.split('.')[1];
  try {
    return tokenClaimsSchema.parse(JSON.parse(Buffer.from(part ?? '', 'base64url').toString()));
  } catch (cause) {
    throw new AgentError('invalid', 'token_malformed', 'this is not an enrollment token', {
      cause,
      hint: 'create one with `outpost device enroll-token ID --kind gateway`',
    });
  }
}

export async function enroll(options: EnrollOptions): Promise<Identity> {
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? nodeHttpFetch;
  const claims = readTokenClaims(options.token);
  // The token is single-use: check everything local before spending it.
  if (!options.force && (await identityExists(options.dataDir))) {
    throw new AgentError(
      'conflict',
      'already_enrolled',
      `${options.dataDir} already holds an identity`,
      { hint: 'pass --force to replace it (the old key stops working)' },
    );
  }
  const pair = await generateKeyPair(options.alg ?? 'EdDSA');
  const { token: proof } = await signEnrollmentProof(pair.privateJwk, {
    jti: claims.jti,
    deviceId: claims.sub,
    now: () => now() / 1000,
  });
  const url = new URL('/api/v1/enroll', options.server).toString();
  let res: HttpResponse;
  try {
    res = await doFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: options.token, publicKey: pair.publicJwk, proof }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (cause) {
    throw new AgentError('unavailable', 'server_unreachable', `cannot reach ${url}`, { cause });
  }
  const text = await res.text();
  if (!res.ok) {
    let detail = text.slice(0, 300);
    try {
      const problem = JSON.parse(text) as { detail?: string; code?: string };
      detail = `${problem.code ?? res.status}: ${problem.detail ?? ''}`;
    } catch {
      // not problem+json
    }
    throw new AgentError(
      res.status === 409 ? 'conflict' : 'unauthenticated',
      'enrollment_refused',
      `enrollment refused: HTTP ${res.status} ${detail}`,
      {
        hint:
          res.status === 409
            ? 'this token was used already: create a new one'
            : 'check the token and the server URL',
      },
    );
  }
  const reply = enrollReplySchema.parse(JSON.parse(text));
  await parseJwks(reply.jwks);
  if (reply.kid !== pair.kid || reply.device.id !== claims.sub) {
    throw new AgentError('internal', 'enrollment_mismatch', 'the server enrolled another key');
  }
  const identity: Identity = {
    v: 1,
    deviceId: reply.device.id,
    kind: reply.device.kind,
    gateway: reply.device.gateway ?? null,
    kid: reply.kid,
    server: reply.endpoints.http,
    mqtt: reply.endpoints.mqtt,
    audience: reply.audience,
    jwks: reply.jwks,
    releaseKeys: reply.releaseKeys,
    enrolledAt: new Date(now()).toISOString(),
  };
  await writeIdentity(options.dataDir, identity, pair.privateJwk);
  return identity;
}
