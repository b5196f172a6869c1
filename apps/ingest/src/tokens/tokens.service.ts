import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { MAX_TOKEN_BYTES } from '@outpost/protocol/limits';
import { signApiToken, verifyApiToken } from '@outpost/signing/api-token';
import type { Logger } from 'pino';
import type { Principal } from '../auth/access.js';
import { FailureLimiter } from '../auth/failure-limiter.js';
import type { IngestConfig } from '../config.js';
import { NotFound, RateLimited, Unauthenticated } from '../errors.js';
import {
  CLOCK,
  type Clock,
  CONFIG,
  LOGGER,
  RANDOM,
  type Random,
  REGISTRY_STORE,
} from '../injection.js';
import { SERVICE_ISSUER, ServiceKeys } from '../keys/service-keys.js';
import { RegistryEvents } from '../registry/registry-events.js';
import type { ApiTokenRecord, RegistryStore } from '../registry/registry-store.js';
import type { CreateToken } from './token-schemas.js';

/** Id of the token set by INGEST_BOOTSTRAP_TOKEN. */
const BOOTSTRAP_ID = 'bootstrap';

const sha256 = (token: string) => createHash('sha256').update(token, 'utf8').digest();

export type TokenView = Omit<ApiTokenRecord, 'hash'>;

export function tokenView({ hash: _hash, ...rest }: ApiTokenRecord): TokenView {
  return rest;
}

/**
 * API tokens (SURFACES.md): JWTs signed by the service, stored only as SHA-256 hashes and
 * compared in constant time; revocable; failed attempts rate-limited per source address.
 */
@Injectable()
export class TokensService implements OnApplicationBootstrap {
  private readonly limiter: FailureLimiter;
  private readonly log: Logger;

  constructor(
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(RANDOM) private readonly random: Random,
    @Inject(LOGGER) logger: Logger,
    private readonly keys: ServiceKeys,
    private readonly events: RegistryEvents,
  ) {
    this.limiter = new FailureLimiter(config.limits.authFailuresPerMinute);
    this.log = logger.child({ module: 'tokens' });
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.bootstrap();
  }

  /**
   * INGEST_BOOTSTRAP_TOKEN, when set, is an admin token; when unset, a token it set before
   * stops working. With no token at all, the first admin token is written to
   * `<data dir>/admin-token` (0600) and only its path is logged.
   */
  async bootstrap(): Promise<void> {
    const now = this.clock.now();
    if (this.config.bootstrapToken) {
      await this.store.insertApiToken({
        id: BOOTSTRAP_ID,
        name: 'bootstrap',
        roles: ['admin'],
        hash: sha256(this.config.bootstrapToken).toString('hex'),
        createdBy: 'INGEST_BOOTSTRAP_TOKEN',
        createdAt: now,
        expiresAt: null,
        revokedAt: null,
        lastUsedAt: null,
      });
      return;
    }
    const existing = await this.store.getApiToken(BOOTSTRAP_ID);
    if (existing && existing.revokedAt === null) await this.store.revokeApiToken(BOOTSTRAP_ID, now);
    const live = (await this.store.listApiTokens()).filter((t) => t.revokedAt === null);
    if (live.length > 0) return;
    const { token } = await this.issue({ name: 'admin', roles: ['admin'] }, 'bootstrap');
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 });
    const path = join(this.config.dataDir, 'admin-token');
    const file = await open(path, 'w', 0o600);
    try {
      await file.chmod(0o600);
      await file.writeFile(`${token}\n`);
    } finally {
      await file.close();
    }
    this.log.info({ path }, 'created the first admin API token');
  }

  async issue(input: CreateToken, createdBy: string): Promise<TokenView & { token: string }> {
    const id = this.random.uuid();
    const now = this.clock.now();
    const { token, claims } = await signApiToken(this.keys.signingKey, {
      issuer: SERVICE_ISSUER,
      subject: input.name,
      roles: input.roles,
      ...(input.ttlSeconds ? { ttlS: input.ttlSeconds } : {}),
      now: () => now / 1000,
      jti: id,
    });
    const record: ApiTokenRecord = {
      id,
      name: input.name,
      roles: [...new Set(input.roles)],
      hash: sha256(token).toString('hex'),
      createdBy,
      createdAt: now,
      expiresAt: claims.exp === undefined ? null : claims.exp * 1000,
      revokedAt: null,
      lastUsedAt: null,
    };
    await this.store.insertApiToken(record);
    return { ...tokenView(record), token };
  }

  async list(): Promise<TokenView[]> {
    return (await this.store.listApiTokens()).map(tokenView);
  }

  async revoke(id: string): Promise<TokenView> {
    const record = await this.store.revokeApiToken(id, this.clock.now());
    if (!record) throw new NotFound('token', id);
    this.events.emit('token.revoked', { tokenId: id });
    return tokenView(record);
  }

  /** Checks a bearer token; every failure counts against `source`. */
  async authenticate(authorization: string | undefined, source: string): Promise<Principal> {
    const now = this.clock.now();
    const retryAfter = this.limiter.retryAfter(source, now);
    if (retryAfter > 0) {
      throw new RateLimited('too many failed authentications; try again later', retryAfter);
    }
    try {
      return await this.check(authorization, now);
    } catch (err) {
      this.limiter.recordFailure(source, now);
      if (err instanceof Unauthenticated) throw err;
      throw new Unauthenticated('token_invalid', 'the API token is not valid');
    }
  }

  private async check(authorization: string | undefined, now: number): Promise<Principal> {
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(authorization ?? '');
    if (!match)
      throw new Unauthenticated(
        'token_missing',
        'an API token is required (Authorization: Bearer …)',
      );
    const token = match[1]!;
    if (token.length > MAX_TOKEN_BYTES)
      throw new Unauthenticated('token_invalid', 'the API token is not valid');
    let id = BOOTSTRAP_ID;
    if (token.split('.').length === 3) {
      const verified = await verifyApiToken(token, {
        keys: this.keys.jwks,
        issuer: SERVICE_ISSUER,
        requireExp: false,
        now: () => now / 1000,
      });
      id = verified.claims.jti;
    }
    const record = await this.store.getApiToken(id);
    const presented = sha256(token);
    // Compare even when there is no record, so timing does not tell which case it was.
    const stored = record ? Buffer.from(record.hash, 'hex') : Buffer.alloc(32);
    const equal = stored.length === 32 && timingSafeEqual(stored, presented);
    if (!record || !equal) throw new Unauthenticated('token_invalid', 'the API token is not valid');
    if (record.revokedAt !== null)
      throw new Unauthenticated('token_revoked', 'the API token was revoked');
    if (record.expiresAt !== null && record.expiresAt <= now) {
      throw new Unauthenticated('token_expired', 'the API token has expired');
    }
    await this.store.touchApiToken(record.id, now);
    return { tokenId: record.id, name: record.name, roles: record.roles };
  }
}
