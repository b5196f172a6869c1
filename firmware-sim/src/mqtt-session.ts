import mqtt, { type MqttClient } from 'mqtt';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';

/**
 * One MQTT 3.1.1 connection at a time (mqtt.js, as aedes speaks it), kept up. mqtt.js's own
 * reconnect is off: every connection is a new client with fresh credentials (a new device
 * JWT, PROTOCOL.md §3), opened after a backoff with jitter. With `renewAt` the session
 * ends gracefully (in-flight PUBACKs first) and opens a new one before the token expires.
 * Messages in flight on a connection that ends are the caller's to send again.
 */

export interface ConnectCredentials {
  username?: string;
  password?: string;
  /** Reconnect with fresh credentials at this time (epoch ms), e.g. before a JWT expires. */
  renewAt?: number;
}

export type MqttSessionEvent =
  | { type: 'up'; url: string }
  | { type: 'down'; reason: 'renewal' | 'closed' | 'reset' | 'unplugged' }
  | { type: 'refused'; message: string; code: number | undefined };

export interface MqttSessionOptions {
  url: string;
  clientId: string;
  /** Made for every connection. */
  credentials: () => Promise<ConnectCredentials>;
  /** Subscribed at QoS 1 on every connection before the session counts as up. */
  subscriptions?: readonly string[];
  random: () => number;
  /** Wall clock, epoch ms. */
  now: () => number;
  backoff?: BackoffOptions;
  keepaliveS?: number;
  connectTimeoutMs?: number;
  /** Publishing is possible. */
  onUp(): void;
  /** The connection ended; what was in flight will not be acknowledged on it. */
  onDown(): void;
  onMessage?(topic: string, payload: Buffer): void;
  onEvent?(event: MqttSessionEvent): void;
}

export interface SessionCounters {
  connects: number;
  connectFailures: number;
  disconnects: number;
  renewals: number;
}

export class MqttSession {
  readonly #o: MqttSessionOptions;
  readonly counters: SessionCounters = {
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
    renewals: 0,
  };
  #client: MqttClient | undefined;
  #up = false;
  #renewing = false;
  #stopped = false;
  #attempt = 0;
  #awayUntil = 0;
  #downReason: 'reset' | 'unplugged' | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;

  constructor(options: MqttSessionOptions) {
    this.#o = options;
  }

  /** True while publishing is possible (not while a renewal drains the connection). */
  get up(): boolean {
    return this.#up && !this.#renewing;
  }

  start(): void {
    this.#stopped = false;
    void this.#connect();
  }

  /** Resolves on PUBACK (QoS 1) or once written (QoS 0); rejects when the connection ends first. */
  publish(topic: string, payload: string, qos: 0 | 1): Promise<void> {
    const client = this.#client;
    if (client === undefined || !this.up) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, { qos }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Drops the connection now (e.g. a PUBACK that never came) and reconnects. */
  reset(): void {
    this.#downReason = 'reset';
    this.#client?.end(true);
  }

  /** Drops the connection and stays away for `forMs`, like a pulled network cable. */
  unplug(forMs: number): void {
    this.#awayUntil = Math.max(this.#awayUntil, this.#o.now() + forMs);
    this.#downReason = 'unplugged';
    if (this.#client !== undefined) {
      this.#client.end(true);
    } else if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#scheduleRetry();
    }
  }

  /** Ends the connection gracefully (in-flight PUBACKs first, for at most `graceMs`). */
  async stop(graceMs = 2000): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#renewTimer);
    const client = this.#client;
    this.#client = undefined;
    this.#up = false;
    if (client === undefined) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => client.end(true, () => resolve()), graceMs);
      client.end(false, () => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  async #connect(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#stopped) return;
    const wait = this.#awayUntil - this.#o.now();
    if (wait > 0) {
      this.#retryTimer = setTimeout(() => void this.#connect(), wait);
      return;
    }
    let credentials: ConnectCredentials;
    try {
      credentials = await this.#o.credentials();
    } catch (err) {
      this.counters.connectFailures++;
      this.#o.onEvent?.({ type: 'refused', message: (err as Error).message, code: undefined });
      this.#scheduleRetry();
      return;
    }
    if (this.#stopped) return;
    const client = mqtt.connect(this.#o.url, {
      protocolVersion: 4,
      clientId: this.#o.clientId,
      ...(credentials.username === undefined ? {} : { username: credentials.username }),
      ...(credentials.password === undefined ? {} : { password: credentials.password }),
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: this.#o.connectTimeoutMs ?? 10_000,
      keepalive: this.#o.keepaliveS ?? 30,
      resubscribe: false,
    });
    this.#client = client;
    let connected = false;
    let failure: { message: string; code: number | undefined } | undefined;
    client.on('connect', () => {
      connected = true;
      this.#attempt = 0;
      this.counters.connects++;
      const ready = () => {
        if (this.#client !== client) return;
        this.#up = true;
        if (credentials.renewAt !== undefined) {
          const renewIn = Math.max(0, credentials.renewAt - this.#o.now());
          this.#renewTimer = setTimeout(() => this.#renew(client), renewIn);
        }
        this.#o.onEvent?.({ type: 'up', url: this.#o.url });
        this.#o.onUp();
      };
      const topics = this.#o.subscriptions ?? [];
      if (topics.length === 0) {
        ready();
        return;
      }
      client.subscribe([...topics], { qos: 1 }, (err) => {
        if (err) {
          failure = { message: `subscribe: ${err.message}`, code: undefined };
          client.end(true);
          return;
        }
        ready();
      });
    });
    client.on('message', (topic, payload) => this.#o.onMessage?.(topic, payload));
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      failure ??= { message: err.message, code: typeof code === 'number' ? code : undefined };
    });
    client.on('close', () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      clearTimeout(this.#renewTimer);
      const wasUp = this.#up;
      const renewing = this.#renewing;
      const reason = this.#downReason;
      this.#up = false;
      this.#renewing = false;
      this.#downReason = undefined;
      client.end(true);
      if (!connected) {
        this.counters.connectFailures++;
        this.#o.onEvent?.({
          type: 'refused',
          message: failure?.message ?? 'connection closed before CONNACK',
          code: failure?.code,
        });
      } else {
        if (renewing) this.counters.renewals++;
        else this.counters.disconnects++;
        this.#o.onEvent?.({ type: 'down', reason: renewing ? 'renewal' : (reason ?? 'closed') });
        this.#o.onDown();
      }
      if (this.#stopped) return;
      if (renewing && wasUp) void this.#connect();
      else this.#scheduleRetry();
    });
  }

  #scheduleRetry(): void {
    if (this.#stopped) return;
    const backoff = backoffDelay(
      this.#attempt++,
      this.#o.random(),
      this.#o.backoff ?? DEFAULT_BACKOFF,
    );
    const delay = Math.max(backoff, this.#awayUntil - this.#o.now());
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }

  /** PROTOCOL.md §3: reconnect with a fresh token before the broker closes us at `exp`. */
  #renew(client: MqttClient): void {
    if (this.#client !== client || this.#stopped) return;
    this.#renewing = true;
    const force = setTimeout(() => client.end(true), 5000);
    client.end(false, () => clearTimeout(force));
  }
}
