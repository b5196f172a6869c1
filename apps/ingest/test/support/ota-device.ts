import { createHash } from 'node:crypto';
import { type Command, type CommandOf, commandSchema } from '@outpost/protocol/commands';
import { compareSemver, type Manifest, manifestSchema } from '@outpost/protocol/ota';
import { topics } from '@outpost/protocol/topics';
import { verifyCommand } from '@outpost/signing/command';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import { isSigningError } from '@outpost/signing/errors';
import type { KeyPair, PublicJwk } from '@outpost/signing/keys';
import { verifyManifest } from '@outpost/signing/manifest';
import mqtt, { type MqttClient } from 'mqtt';
import type { InProcessIngest } from './ingest-app.js';

/**
 * A simulated device for OTA tests, doing on the wire what PROTOCOL.md §8 asks of a device:
 * it verifies each command with the service JWKS from its enrollment, verifies the manifest
 * against the release keys it trusts (from enrollment, then `keys.release`), checks
 * component, hardware and version, downloads the artifact with HTTP Range (resuming when the
 * first read is cut short), checks size and sha256, "installs", and reports `ota.progress`
 * and `ota.result` on its events topic. A gateway does the same for its children, on their
 * topics. How each update ends is set per unit.
 */

export type Outcome = 'succeed' | 'rollback' | 'fail-install' | 'crash-during-install';

export interface Unit {
  id: string;
  hardware: string;
  /** Versions per component. */
  versions: Record<string, string>;
  outcome: Outcome;
}

export interface DownloadRequest {
  unit: string;
  status: number;
  range: string | null;
  contentRange: string | null;
  bytes: number;
  code?: string;
}

export interface SimOptions {
  hardware?: string;
  version?: string;
  outcome?: Outcome;
  /** Children this gateway acts for. */
  children?: readonly Omit<Unit, 'outcome'>[];
  /** The first download is cut after this many bytes; the rest comes by Range. */
  truncateAt?: number;
  /** A byte of the download is flipped on the way (the device's own check must catch it). */
  corruptDownload?: boolean;
  /** Offers wait until `release()`: lets a test decide outcomes after it knows the order. */
  hold?: boolean;
}

type Offer = CommandOf<'ota.offer'>;

export class SimDevice {
  readonly units = new Map<string, Unit>();
  /** Every verified command, in order of arrival. */
  readonly commands: Command[] = [];
  readonly offers: Offer[] = [];
  readonly downloads: DownloadRequest[] = [];
  /** Commands that did not verify (and were ignored). */
  readonly refused: string[] = [];
  releaseKeys: PublicJwk[];
  private client: MqttClient | undefined;
  private gate: Promise<void>;
  private open: () => void = () => {};
  private readonly jwks: { keys: PublicJwk[] };
  private readonly busy = new Set<Promise<void>>();
  private closing = false;

  constructor(
    private readonly ingest: InProcessIngest,
    readonly id: string,
    private readonly pair: KeyPair,
    reply: Record<string, unknown>,
    private readonly options: SimOptions = {},
  ) {
    this.jwks = reply.jwks as { keys: PublicJwk[] };
    this.releaseKeys = reply.releaseKeys as PublicJwk[];
    this.units.set(id, {
      id,
      hardware: options.hardware ?? 'sim-a',
      versions: { main: options.version ?? '1.0.0' },
      outcome: options.outcome ?? 'succeed',
    });
    for (const child of options.children ?? []) {
      this.units.set(child.id, { ...child, outcome: 'succeed' });
    }
    this.gate = options.hold
      ? new Promise((resolve) => {
          this.open = resolve;
        })
      : Promise.resolve();
  }

  unit(id = this.id): Unit {
    return this.units.get(id)!;
  }

  /** Lets held offers proceed. */
  release(): void {
    this.open();
  }

  async connect(): Promise<void> {
    const { token } = await signDeviceJwt(this.pair.privateJwk, {
      deviceId: this.id,
      now: () => this.ingest.clock.now() / 1000,
    });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${this.ingest.mqttPort}`, {
      protocolVersion: 4,
      clientId: this.id,
      username: this.id,
      password: token,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    client.on('message', (_topic, payload) => {
      const work = this.onCommand(payload.toString('utf8')).catch(() => {});
      this.busy.add(work);
      void work.finally(() => this.busy.delete(work));
    });
    client.on('error', () => {});
    this.client = client;
    await client.subscribeAsync(
      [...this.units.keys()].map((id) => topics.commands(id)),
      { qos: 1 },
    );
  }

  /** Like `kill -9` of the agent: the connection drops without a DISCONNECT. */
  crash(): void {
    this.client?.stream.destroy();
    this.client?.end(true);
    this.client = undefined;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.open();
    await Promise.allSettled([...this.busy]);
    await this.client?.endAsync();
    this.client = undefined;
  }

  private async onCommand(jws: string): Promise<void> {
    let command: Command;
    try {
      const verified = await verifyCommand(jws, {
        keys: this.jwks,
        deviceId: [...this.units.keys()],
        schema: commandSchema,
        now: () => this.ingest.clock.now() / 1000,
      });
      command = verified.payload;
    } catch (err) {
      this.refused.push(isSigningError(err) ? err.code : String(err));
      return;
    }
    this.commands.push(command);
    if (command.type === 'keys.release') this.releaseKeys = command.keys as PublicJwk[];
    if (command.type === 'ota.offer') {
      this.offers.push(command);
      await this.gate;
      if (!this.closing) await this.update(command);
    }
  }

  private async update(offer: Offer): Promise<void> {
    const unit = this.units.get(offer.device)!;
    const progress = (state: string, detail?: string) =>
      this.event(unit.id, {
        type: 'ota.progress',
        rolloutId: offer.rolloutId,
        component: offer.component,
        state,
        ...(detail ? { detail } : {}),
      });
    const result = (state: 'succeeded' | 'failed' | 'rolled_back', reason?: string) =>
      this.event(unit.id, {
        type: 'ota.result',
        rolloutId: offer.rolloutId,
        component: offer.component,
        state,
        version: unit.versions[offer.component],
        ...(reason ? { reason } : {}),
      });

    let manifest: Manifest;
    try {
      manifest = (
        await verifyManifest(offer.manifest, {
          trustedKeys: this.releaseKeys,
          schema: manifestSchema,
        })
      ).payload;
    } catch (err) {
      return result('failed', `manifest: ${isSigningError(err) ? err.code : 'invalid'}`);
    }
    const running = unit.versions[offer.component] ?? '0.0.0';
    if (manifest.component !== offer.component) return result('failed', 'component mismatch');
    if (!manifest.hardware.includes(unit.hardware)) {
      return result(
        'failed',
        `hardware: ${unit.hardware} is not in ${manifest.hardware.join(',')}`,
      );
    }
    if (manifest.version === running) return result('succeeded');
    if (compareSemver(manifest.version, running) < 0 && offer.rollbackTarget !== manifest.version) {
      return result('failed', `downgrade: runs ${running}, offered ${manifest.version}`);
    }
    if (manifest.minVersion && compareSemver(running, manifest.minVersion) < 0) {
      return result('failed', `min_version: runs ${running}, needs ${manifest.minVersion}`);
    }

    await progress('downloading');
    const download = await this.download(unit.id, offer.url, manifest.size);
    if (typeof download === 'string') return result('failed', download);
    await progress('verifying');
    if (download.length !== manifest.size) return result('failed', 'size mismatch');
    if (createHash('sha256').update(download).digest('hex') !== manifest.sha256) {
      return result('failed', 'sha256 mismatch');
    }
    await progress('installing');
    if (unit.outcome === 'crash-during-install') {
      // The agent dies mid-install; the bootloader keeps the old image. After the restart
      // it finds the update unfinished and says so.
      this.crash();
      await this.connect();
      return result('failed', 'interrupted: the install did not complete');
    }
    if (unit.outcome === 'fail-install') return result('failed', 'flash write failed');
    await progress('rebooting');
    await progress('trial');
    if (unit.outcome === 'rollback') return result('rolled_back', 'health check failed after boot');
    unit.versions[offer.component] = manifest.version;
    return result('succeeded');
  }

  /** The artifact, or why it could not be had. */
  private async download(unit: string, url: string, size: number): Promise<Buffer | string> {
    const { token } = await signDeviceJwt(this.pair.privateJwk, {
      deviceId: this.id,
      now: () => this.ingest.clock.now() / 1000,
    });
    const parts: Buffer[] = [];
    let received = 0;
    for (let attempt = 0; attempt < 5 && received < size; attempt++) {
      const range = received > 0 ? `bytes=${received}-` : null;
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${token}`, ...(range ? { range } : {}) },
      });
      const record: DownloadRequest = {
        unit,
        status: res.status,
        range,
        contentRange: res.headers.get('content-range'),
        bytes: 0,
      };
      this.downloads.push(record);
      if (res.status !== 200 && res.status !== 206) {
        const problem = (await res.json().catch(() => ({}))) as { code?: string };
        record.code = problem.code ?? '';
        return `download: HTTP ${res.status} ${problem.code ?? ''}`.trim();
      }
      const cut = attempt === 0 ? this.options.truncateAt : undefined;
      const reader = res.body!.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let chunk = Buffer.from(value);
        if (cut !== undefined && received + chunk.length > cut)
          chunk = chunk.subarray(0, cut - received);
        parts.push(chunk);
        received += chunk.length;
        record.bytes += chunk.length;
        if (cut !== undefined && received >= cut) {
          // The connection drops mid-download.
          await reader.cancel();
          break;
        }
      }
    }
    const bytes = Buffer.concat(parts);
    if (this.options.corruptDownload && bytes.length > 0) bytes[bytes.length >> 1]! ^= 0xff;
    return bytes;
  }

  private async event(deviceId: string, body: Record<string, unknown>): Promise<void> {
    await this.client?.publishAsync(
      topics.events(deviceId),
      JSON.stringify({ v: 1, at: this.ingest.clock.now() / 1000, ...body }),
      { qos: 1 },
    );
  }
}
