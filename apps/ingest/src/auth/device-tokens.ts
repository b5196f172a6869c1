import { Inject, Injectable } from '@nestjs/common';
import {
  authenticateBearer,
  ConnectionRefused,
  type DeviceSession,
} from '../broker/broker-auth.js';
import type { IngestConfig } from '../config.js';
import { RateLimited, Unauthenticated } from '../errors.js';
import { CLOCK, type Clock, CONFIG, REGISTRY_STORE } from '../injection.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { FailureLimiter } from './failure-limiter.js';

/** Device JWTs on HTTP (PROTOCOL.md §5): the same checks as MQTT CONNECT. */
@Injectable()
export class DeviceTokens {
  private readonly failures: FailureLimiter;

  constructor(
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {
    this.failures = new FailureLimiter(config.limits.authFailuresPerMinute);
  }

  async authenticate(authorization: string | undefined, source: string): Promise<DeviceSession> {
    const now = this.clock.now();
    const retryAfter = this.failures.retryAfter(source, now);
    if (retryAfter > 0)
      throw new RateLimited('too many failed authentications; try again later', retryAfter);
    try {
      return await authenticateBearer(this.store, authorization, {
        audience: this.config.audience,
        maxLifetimeS: this.config.limits.deviceJwtMaxLifetimeS,
        now,
      });
    } catch (err) {
      this.failures.recordFailure(source, now);
      if (err instanceof ConnectionRefused) throw new Unauthenticated(err.code, err.message);
      throw err;
    }
  }
}
