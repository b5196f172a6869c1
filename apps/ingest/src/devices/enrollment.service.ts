import { Inject, Injectable } from '@nestjs/common';
import type { EnrollmentRequest } from '@outpost/protocol/enrollment';
import { isAppError } from '@outpost/protocol/errors';
import {
  signEnrollmentToken,
  verifyEnrollmentProof,
  verifyEnrollmentToken,
} from '@outpost/signing/enrollment';
import { parsePublicJwk } from '@outpost/signing/keys';
import type { Principal } from '../auth/access.js';
import { FailureLimiter } from '../auth/failure-limiter.js';
import type { IngestConfig } from '../config.js';
import { RateLimited } from '../errors.js';
import { CLOCK, type Clock, CONFIG, RANDOM, type Random, REGISTRY_STORE } from '../injection.js';
import { SERVICE_ISSUER, ServiceKeys } from '../keys/service-keys.js';
import { ReleaseKeysService } from '../ota/release-keys.service.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { EnrollmentRefused } from './device-errors.js';
import type { CreateEnrollment } from './device-schemas.js';
import { DevicesService, deviceView } from './devices.service.js';

/** What a device needs to connect, returned by a successful enrollment (PROTOCOL.md §2.3). */
export interface Endpoints {
  http: string;
  mqtt: { host: string; port: number; tlsPort: number | null; websocket: string };
}

/** PROTOCOL.md §2: enrollment tokens and enrollment with proof of possession. */
@Injectable()
export class EnrollmentService {
  private readonly failures: FailureLimiter;

  constructor(
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(RANDOM) private readonly random: Random,
    private readonly keys: ServiceKeys,
    private readonly devices: DevicesService,
    private readonly releaseKeys: ReleaseKeysService,
  ) {
    this.failures = new FailureLimiter(config.limits.authFailuresPerMinute);
  }

  async createToken(input: CreateEnrollment, caller: Principal) {
    const device = await this.devices.prepareForEnrollment(input);
    const now = this.clock.now();
    const jti = this.random.uuid();
    const { token, claims } = await signEnrollmentToken(this.keys.signingKey, {
      issuer: SERVICE_ISSUER,
      deviceId: device.id,
      kind: device.kind,
      ...(device.gateway ? { gateway: device.gateway } : {}),
      ttlS: input.ttlSeconds ?? this.config.limits.enrollmentTtlS,
      now: () => now / 1000,
      jti,
    });
    await this.store.insertEnrollment({
      jti,
      deviceId: device.id,
      kind: device.kind,
      gateway: device.gateway,
      createdBy: caller.tokenId,
      createdAt: now,
      expiresAt: claims.exp * 1000,
    });
    return {
      token,
      jti,
      deviceId: device.id,
      kind: device.kind,
      gateway: device.gateway,
      expiresAt: new Date(claims.exp * 1000).toISOString(),
    };
  }

  /** Verifies token and proof, then consumes the token atomically and registers the key. */
  async enroll(request: EnrollmentRequest, source: string, endpoints: Endpoints) {
    const now = this.clock.now();
    const retryAfter = this.failures.retryAfter(source, now);
    if (retryAfter > 0)
      throw new RateLimited('too many failed enrollments; try again later', retryAfter);
    try {
      const nowS = () => this.clock.now() / 1000;
      const token = await verifyEnrollmentToken(request.token, {
        keys: this.keys.jwks,
        issuer: SERVICE_ISSUER,
        now: nowS,
      });
      const proof = await verifyEnrollmentProof(request.proof, {
        publicJwk: request.publicKey,
        token: token.claims,
        now: nowS,
      });
      const jwk = parsePublicJwk(request.publicKey);
      // Read before the token is consumed: the reply must not fail after it is.
      const releaseKeys = await this.releaseKeys.forEnrollment(token.claims.sub);
      const outcome = await this.store.completeEnrollment(
        token.claims.jti,
        {
          kid: proof.kid,
          alg: proof.alg,
          jwk: { ...jwk, kid: proof.kid, alg: proof.alg },
          addedAt: now,
        },
        now,
      );
      if (!outcome.ok) throw new EnrollmentRefused(outcome.reason);
      return {
        device: deviceView(outcome.device),
        kid: proof.kid,
        endpoints,
        audience: this.config.audience,
        jwks: this.keys.jwks,
        releaseKeys,
      };
    } catch (err) {
      // Only failed authentication counts: a token already used (409) is an honest race.
      if (isAppError(err) && err.kind === 'unauthenticated')
        this.failures.recordFailure(source, now);
      throw err;
    }
  }
}
