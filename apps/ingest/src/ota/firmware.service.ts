import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { type Manifest, manifestSchema } from '@outpost/protocol/ota';
import { isSigningError } from '@outpost/signing/errors';
import { verifyManifest } from '@outpost/signing/manifest';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Principal } from '../auth/access.js';
import { FailureLimiter } from '../auth/failure-limiter.js';
import type { DeviceSession } from '../broker/broker-auth.js';
import type { IngestConfig } from '../config.js';
import { NotFound, RateLimited } from '../errors.js';
import { CLOCK, type Clock, CONFIG, LOGGER, METRICS, RANDOM, type Random } from '../injection.js';
import { ArtifactDamaged, FirmwareStore } from './firmware-store.js';
import {
  ArtifactCorrupt,
  FirmwareExists,
  FirmwareTooLarge,
  FirmwareUntrusted,
  ManifestRefused,
} from './ota-errors.js';
import type { ListFirmwareQuery } from './ota-schemas.js';
import { type FirmwareRecord, OTA_STORE, type OtaStore } from './ota-store.js';
import { ReleaseKeysService } from './release-keys.service.js';

const iso = (ms: number) => new Date(ms).toISOString();

export function firmwareView(f: FirmwareRecord) {
  return {
    id: f.id,
    name: f.name,
    component: f.component,
    version: f.version,
    hardware: f.hardware,
    size: f.size,
    sha256: f.sha256,
    minVersion: f.minVersion,
    createdAt: iso(f.manifestCreatedAt * 1000),
    kid: f.kid,
    manifest: f.manifest,
    uploadedBy: f.uploadedBy,
    uploadedAt: iso(f.uploadedAt),
  };
}

/**
 * Firmware: a manifest signed offline by a release key plus its artifact. An upload is
 * accepted only if the manifest verifies against a registered release key and the bytes
 * are exactly the ones it describes; artifacts are stored by digest (`firmware-store.ts`).
 * Devices download them with their device JWT, rate limited, and only firmware they (or
 * their gateway's children) were offered.
 */
@Injectable()
export class FirmwareService implements OnModuleInit {
  readonly artifacts: FirmwareStore;
  private readonly downloads: FailureLimiter;
  private readonly log: Logger;
  private readonly served: Counter<'outcome'>;

  constructor(
    @Inject(OTA_STORE) private readonly store: OtaStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(RANDOM) private readonly random: Random,
    @Inject(LOGGER) logger: Logger,
    @Inject(METRICS) metrics: Registry,
    private readonly releaseKeys: ReleaseKeysService,
  ) {
    this.log = logger.child({ module: 'firmware' });
    this.artifacts = new FirmwareStore(config.ota.firmwareDir, config.ota.verifyTtlMs, clock.now);
    // The limiter counts events per key in a sliding minute: here every download request.
    this.downloads = new FailureLimiter(config.ota.downloadsPerMinute);
    this.served = new Counter({
      name: 'outpost_ingest_firmware_downloads_total',
      help: 'Artifact download requests, by outcome',
      labelNames: ['outcome'],
      registers: [metrics],
    });
  }

  async onModuleInit(): Promise<void> {
    await this.artifacts.init();
  }

  /** Verifies a manifest against the trusted release keys; its payload, and the key's kid. */
  async verify(jws: string): Promise<{ manifest: Manifest; kid: string }> {
    const trustedKeys = await this.releaseKeys.trusted();
    try {
      const verified = await verifyManifest(jws, { trustedKeys, schema: manifestSchema });
      return { manifest: verified.payload, kid: verified.kid };
    } catch (err) {
      if (!isSigningError(err)) throw err;
      if (err.code === 'kid_unknown' || err.code === 'kid_mismatch') {
        throw new ManifestRefused(
          'release_key_unknown',
          trustedKeys.length === 0
            ? 'no release key is registered: register the public key with POST /api/v1/release-keys'
            : 'the manifest is not signed by a registered release key',
        );
      }
      if (err.kind === 'unauthenticated') {
        throw new ManifestRefused(
          'manifest_signature_invalid',
          `the manifest signature does not verify (${err.code})`,
        );
      }
      throw new ManifestRefused('manifest_invalid', `the manifest is invalid: ${err.message}`, {
        cause: err.code,
        ...(err.details ?? {}),
      });
    }
  }

  /**
   * Stores a firmware. The same manifest and bytes again return the stored record
   * (`created: false`); another artifact for a stored component and version is refused.
   */
  async upload(
    manifestJws: string | undefined,
    body: AsyncIterable<Uint8Array>,
    caller: Principal,
  ): Promise<{ created: boolean; firmware: FirmwareRecord }> {
    if (!manifestJws) {
      throw new ManifestRefused(
        'manifest_missing',
        'send the signed manifest in the X-Outpost-Manifest header and the artifact as the body',
      );
    }
    const { manifest, kid } = await this.verify(manifestJws.trim());
    if (manifest.size > this.config.ota.firmwareMaxBytes) {
      throw new FirmwareTooLarge(manifest.size, this.config.ota.firmwareMaxBytes);
    }
    const existing = await this.store.findFirmware(manifest.component, manifest.version);
    if (existing && existing.sha256 !== manifest.sha256) {
      throw new FirmwareExists(manifest.component, manifest.version, existing.id);
    }
    await this.artifacts.write(body, manifest);
    if (existing) return { created: false, firmware: existing };

    const firmware: FirmwareRecord = {
      id: this.random.uuid(),
      name: manifest.name,
      component: manifest.component,
      version: manifest.version,
      hardware: manifest.hardware,
      size: manifest.size,
      sha256: manifest.sha256,
      minVersion: manifest.minVersion ?? null,
      manifestCreatedAt: manifest.createdAt,
      manifest: manifestJws.trim(),
      kid,
      uploadedBy: caller.tokenId,
      uploadedAt: this.clock.now(),
    };
    const inserted = await this.store.insertFirmware(firmware);
    if (!inserted.created) {
      // Another upload of this component and version won the race.
      if (inserted.existing.sha256 !== firmware.sha256) {
        throw new FirmwareExists(firmware.component, firmware.version, inserted.existing.id);
      }
      return { created: false, firmware: inserted.existing };
    }
    this.log.info(
      { firmwareId: firmware.id, component: firmware.component, version: firmware.version, kid },
      'firmware uploaded',
    );
    return { created: true, firmware };
  }

  async list(query: ListFirmwareQuery) {
    const page = await this.store.listFirmware({
      limit: query.limit,
      ...(query.component ? { component: query.component } : {}),
      ...(query.after ? { after: query.after } : {}),
    });
    return { items: page.items.map(firmwareView), next: page.next };
  }

  async get(id: string): Promise<FirmwareRecord> {
    const firmware = await this.store.getFirmware(id);
    if (!firmware) throw new NotFound('firmware', id);
    return firmware;
  }

  /** A firmware a rollout may offer: its manifest still verifies against the trusted keys. */
  async trustedFirmware(id: string): Promise<FirmwareRecord> {
    const firmware = await this.get(id);
    try {
      await this.verify(firmware.manifest);
    } catch (err) {
      if (err instanceof ManifestRefused) throw new FirmwareUntrusted(id, firmware.kid);
      throw err;
    }
    return firmware;
  }

  /**
   * The firmware whose artifact `device` may download now: rate limited per device, and
   * only firmware offered to it or to one of its children (others look like they do not
   * exist).
   */
  async forDownload(device: DeviceSession, id: string): Promise<FirmwareRecord> {
    const now = this.clock.now();
    const retryAfter = this.downloads.retryAfter(device.deviceId, now);
    if (retryAfter > 0) {
      this.served.inc({ outcome: 'rate_limited' });
      throw new RateLimited('too many artifact downloads; try again later', retryAfter);
    }
    this.downloads.recordFailure(device.deviceId, now);
    const firmware = await this.store.getFirmware(id);
    const offered =
      firmware !== null && (await this.store.wasOffered(id, [device.deviceId, ...device.children]));
    if (!firmware || !offered) {
      this.served.inc({ outcome: 'not_found' });
      throw new NotFound('firmware', id);
    }
    return firmware;
  }

  /** Bytes `[start, end]` of the artifact, only while the stored bytes have their digest. */
  async openArtifact(firmware: FirmwareRecord, start: number, end: number) {
    try {
      const stream = await this.artifacts.read(firmware, start, end);
      this.served.inc({ outcome: 'served' });
      return stream;
    } catch (err) {
      if (!(err instanceof ArtifactDamaged)) throw err;
      this.served.inc({ outcome: 'corrupt' });
      this.log.error(
        { firmwareId: firmware.id, sha256: firmware.sha256, damage: err.why },
        'stored artifact does not match its manifest; refusing to serve it',
      );
      throw new ArtifactCorrupt(firmware.id);
    }
  }
}
