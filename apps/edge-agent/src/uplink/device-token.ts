import { signDeviceJwt } from '@outpost/signing/device-jwt';
import type { SigningKey } from '@outpost/signing/sign';

/**
 * PROTOCOL.md §3 device JWTs for MQTT passwords and HTTP bearers. A fresh one for every MQTT
 * connection; the HTTP one is reused until a fifth of its lifetime is left. Times follow the
 * ingest's clock when it is known (`offsetMs`), so a gateway whose clock is off still gets
 * tokens the broker accepts.
 */
export interface DeviceTokenOptions {
  key: SigningKey;
  deviceId: string;
  audience: string;
  /** Default 1 h; the broker allows at most 24 h. */
  lifetimeS?: number;
  /** Wall clock, epoch ms. */
  now: () => number;
  /** The ingest's clock minus ours, in ms, when known. */
  offsetMs?: () => number | undefined;
}

export interface DeviceToken {
  token: string;
  /** Epoch ms (on our clock) after which the token should not be used. */
  renewAtMs: number;
  lifetimeMs: number;
}

export class DeviceTokens {
  readonly #options: DeviceTokenOptions;
  #cached: DeviceToken | undefined;

  constructor(options: DeviceTokenOptions) {
    this.#options = options;
  }

  get lifetimeMs(): number {
    return (this.#options.lifetimeS ?? 3600) * 1000;
  }

  /** A new token. */
  async fresh(): Promise<DeviceToken> {
    const { key, deviceId, audience, now, offsetMs } = this.#options;
    const lifetimeS = this.#options.lifetimeS ?? 3600;
    const offset = offsetMs?.() ?? 0;
    const { token } = await signDeviceJwt(key, {
      deviceId,
      audience,
      lifetimeS,
      now: () => (now() + offset) / 1000,
    });
    this.#cached = { token, renewAtMs: now() + lifetimeS * 800, lifetimeMs: lifetimeS * 1000 };
    return this.#cached;
  }

  /** The cached token while it has more than a fifth of its life left, else a new one. */
  async current(): Promise<DeviceToken> {
    const cached = this.#cached;
    if (cached !== undefined && this.#options.now() < cached.renewAtMs) return cached;
    return this.fresh();
  }

  /** Forget the cached token (the server refused it). */
  invalidate(): void {
    this.#cached = undefined;
  }
}
