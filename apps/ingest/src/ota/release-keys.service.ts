import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { algorithmOf, type PublicJwk, parsePublicJwk, thumbprint } from '@outpost/signing/keys';
import type { Logger } from 'pino';
import type { Principal } from '../auth/access.js';
import { Broker } from '../broker/broker.js';
import type { IngestConfig } from '../config.js';
import { NotFound } from '../errors.js';
import { CLOCK, type Clock, CONFIG, LOGGER, REGISTRY_STORE } from '../injection.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { ReleaseKeyRefused } from './ota-errors.js';
import type { RegisterReleaseKey } from './ota-schemas.js';
import { OTA_STORE, type OtaStore, type ReleaseKeyRecord } from './ota-store.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function releaseKeyView(k: ReleaseKeyRecord) {
  return {
    kid: k.kid,
    alg: k.alg,
    name: k.name,
    publicKey: k.jwk as unknown as Record<string, unknown>,
    createdBy: k.createdBy,
    createdAt: iso(k.createdAt)!,
    revokedAt: iso(k.revokedAt),
    revokedBy: k.revokedBy,
  };
}

/**
 * Release keys (PROTOCOL.md §1): the public keys of the firmware engineers' signing keys.
 * Only public keys are ever stored here, so this service cannot sign a manifest. Devices get
 * the trusted keys at enrollment and, whenever the set changes, in a `keys.release` command:
 * at once if online, else when they next subscribe to their commands topic.
 */
@Injectable()
export class ReleaseKeysService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log: Logger;
  private readonly work = new Set<Promise<void>>();
  private readonly offs: (() => void)[] = [];

  constructor(
    @Inject(OTA_STORE) private readonly store: OtaStore,
    @Inject(REGISTRY_STORE) private readonly registry: RegistryStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(LOGGER) logger: Logger,
    private readonly broker: Broker,
  ) {
    this.log = logger.child({ module: 'release-keys' });
  }

  onApplicationBootstrap(): void {
    this.offs.push(
      this.broker.onCommandsSubscribed(({ deviceId, subscriber }) => {
        // A gateway verifies its children's firmware with its own trusted keys.
        if (deviceId === subscriber) this.track(this.sendIfStale([deviceId]));
      }),
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    await Promise.allSettled([...this.work]);
  }

  async register(input: RegisterReleaseKey, caller: Principal) {
    const jwk = parsePublicJwk(input.publicKey);
    const kid = await thumbprint(jwk);
    if (jwk.kid !== undefined && jwk.kid !== kid) {
      throw new ReleaseKeyRefused(
        'release_key_kid_mismatch',
        `the key's kid ${jwk.kid} is not its RFC 7638 thumbprint ${kid}`,
        jwk.kid,
      );
    }
    const alg = algorithmOf(jwk);
    const now = this.clock.now();
    const result = await this.store.addReleaseKey({
      kid,
      alg,
      jwk: { ...jwk, kid, alg } as PublicJwk,
      name: input.name ?? null,
      createdBy: caller.tokenId,
      createdAt: now,
      revokedAt: null,
      revokedBy: null,
    });
    if (result.key.revokedAt !== null) {
      throw new ReleaseKeyRefused(
        'release_key_revoked',
        `release key ${kid} was revoked and cannot be trusted again; generate a new one`,
        kid,
      );
    }
    if (result.created) {
      this.log.info({ kid, by: caller.tokenId }, 'release key registered');
      this.track(this.announce());
    }
    return { created: result.created, key: releaseKeyView(result.key) };
  }

  async list() {
    return (await this.store.listReleaseKeys()).map(releaseKeyView);
  }

  async revoke(kid: string, caller: Principal) {
    const outcome = await this.store.revokeReleaseKey(kid, caller.tokenId, this.clock.now());
    if (outcome.outcome === 'not_found') throw new NotFound('release_key', kid);
    if (outcome.outcome === 'last_key') {
      throw new ReleaseKeyRefused(
        'last_release_key',
        'devices must trust at least one release key: register its successor first',
        kid,
      );
    }
    if (outcome.outcome === 'revoked') {
      this.log.warn({ kid, by: caller.tokenId }, 'release key revoked');
      this.track(this.announce());
    }
    return releaseKeyView(outcome.key);
  }

  /** The public keys devices trust now. */
  async trusted(): Promise<PublicJwk[]> {
    return (await this.store.listReleaseKeys())
      .filter((k) => k.revokedAt === null)
      .map((k) => k.jwk);
  }

  /** The trusted keys for an enrollment reply (PROTOCOL.md §2.3), noted as sent. */
  async forEnrollment(deviceId: string): Promise<PublicJwk[]> {
    const [keys, version] = await Promise.all([this.trusted(), this.store.releaseKeySetVersion()]);
    if (version > 0) await this.store.recordReleaseKeysSent([deviceId], version);
    return keys;
  }

  /**
   * Sends the new key set to the devices online now. It waits for one connectivity flush
   * first, so a device that connected just before the change is listed too; one connecting
   * after it gets the keys when it subscribes.
   */
  private async announce(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.config.mqtt.connectivityFlushMs + 100));
    let after: string | undefined;
    let sent = 0;
    do {
      const page = await this.registry.listDevices({
        status: 'online',
        limit: 500,
        ...(after ? { after } : {}),
      });
      sent += await this.sendIfStale(page.items.map((d) => d.id));
      after = page.next ?? undefined;
    } while (after);
    this.log.info({ devices: sent }, 'release keys sent to online devices');
  }

  /** Sends `keys.release` to each device whose last copy is older than the key set. */
  private async sendIfStale(deviceIds: readonly string[]): Promise<number> {
    const version = await this.store.releaseKeySetVersion();
    if (version === 0) return 0;
    const keys = await this.trusted();
    if (keys.length === 0) return 0;
    let sent = 0;
    for (const deviceId of deviceIds) {
      if ((await this.store.releaseKeysSentTo(deviceId)) >= version) continue;
      await this.broker.publishCommand(deviceId, { type: 'keys.release', keys });
      await this.store.recordReleaseKeysSent([deviceId], version);
      sent++;
    }
    return sent;
  }

  private track(work: Promise<unknown>): void {
    const p = work.then(
      () => undefined,
      (err: unknown) => this.log.warn({ err }, 'could not send release keys'),
    );
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }
}
