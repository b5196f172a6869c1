import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import {
  generateKeyPair,
  type PublicJwk,
  parsePrivateJwk,
  publicJwkOf,
} from '@outpost/signing/keys';
import { importSigningKey, type SigningKey } from '@outpost/signing/sign';
import { CLOCK, type Clock, REGISTRY_STORE } from '../injection.js';
import type { RegistryStore } from '../registry/registry-store.js';

/** `iss` of every token the service signs (enrollment, API tokens, commands). */
export const SERVICE_ISSUER = 'outpost-ingest';

/**
 * The service's signing key, shared by every replica through the registry: the first
 * replica to start creates it; the others load the same key.
 */
@Injectable()
export class ServiceKeys implements OnModuleInit {
  private current: SigningKey | undefined;
  private publicKeys: PublicJwk[] = [];

  constructor(
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async onModuleInit(): Promise<void> {
    const candidate = await generateKeyPair('Ed25519');
    const keys = await this.store.ensureServiceKey({
      kid: candidate.kid,
      privateJwk: candidate.privateJwk as unknown as Record<string, unknown>,
      createdAt: this.clock.now(),
    });
    this.current = await importSigningKey(keys[0]!.privateJwk);
    this.publicKeys = keys.map((k) => publicJwkOf(parsePrivateJwk(k.privateJwk)));
  }

  get signingKey(): SigningKey {
    if (!this.current) throw new Error('service keys used before initialisation');
    return this.current;
  }

  /** The JWKS devices use to verify commands (PROTOCOL.md §8). */
  get jwks(): { keys: PublicJwk[] } {
    return { keys: this.publicKeys.map((k) => ({ ...k, use: 'sig' }) as PublicJwk) };
  }
}
