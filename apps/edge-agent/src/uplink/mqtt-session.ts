import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { AgentMetrics } from '../metrics/agent-metrics.js';
import {
  attemptAfterClose,
  type BackoffOptions,
  backoffDelay,
  DEFAULT_BACKOFF,
  DEFAULT_STABLE_AFTER_MS,
} from './backoff.js';
import type { DeviceTokens } from './device-token.js';

/**
 * One MQTT session to the ingest at a time (mqtt.js, MQTT 3.1.1 as aedes speaks it). The
 * client's own reconnect is off: every connection is a new client with a fresh device JWT
 * (PROTOCOL.md §3), opened after an exponential backoff with full jitter. The backoff starts
 * over only after a connection stayed up `stableAfterMs`, not on CONNACK: a broker that accepts
 * and closes at once is retried ever more slowly. Before the token expires, the session ends
 * gracefully (in-flight PUBACKs first) and opens a new one.
 */
export interface MqttSessionOptions {
  /** `mqtt://host:port` or `mqtts://host:port`. */
  url: string;
  deviceId: string;
  tokens: DeviceTokens;
  /** Topics subscribed at QoS 1 on every connect (the commands topic). */
  subscriptions: readonly string[];
  /**
   * Topics subscribed after those, whose refusal is logged but does not end the session:
   * the commands topics of child devices, which the broker grants only while the registry
   * names this gateway as their parent. One child enrolled elsewhere must not cut the
   * gateway off.
   */
  optionalSubscriptions?: readonly string[];
  /**
   * The broker answered the optional subscriptions of the current connection: each topic,
   * granted (`true`) or refused. Not called when no SUBACK came (the connection ended).
   */
  onOptionalSubscribed?(answers: ReadonlyMap<string, boolean>): void;
  random: () => number;
  /** Monotonic ms, for how long the session has been down and how long a connection lasted. */
  monotonic: () => number;
  backoff?: BackoffOptions;
  /** A connection up this long (ms from CONNACK) starts the backoff over; default 30 s. */
  stableAfterMs?: number;
  keepaliveS?: number;
  connectTimeoutMs?: number;
  /** Renew at this fraction of the token's lifetime; default 0.8. */
  renewAt?: number;
  logger: Logger;
  metrics: AgentMetrics;
  onMessage(topic: string, payload: Buffer): void;
  /** The session is up: subscribed and ready to publish. */
  onUp(): void;
  /** The session ended; messages without PUBACK will not be acknowledged on it. */
  onDown(reason: string): void;
  /** Accept self-signed certificates on mqtts (a dev ingest). */
  rejectUnauthorized?: boolean;
}

export class MqttSession {
  readonly #o: MqttSessionOptions;
  #client: MqttClient | undefined;
  #up = false;
  /** Optional subscriptions the broker granted on the current connection. */
  readonly #granted = new Set<string>();
  #renewing = false;
  #stopped = false;
  #attempt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #downSince: number | undefined;

  constructor(options: MqttSessionOptions) {
    this.#o = options;
    this.#downSince = options.monotonic();
  }

  /** True while publishing is possible (not while a renewal drains the session). */
  get up(): boolean {
    return this.#up && !this.#renewing;
  }

  /** Whether the broker granted this optional subscription on the current connection. */
  granted(topic: string): boolean {
    return this.#granted.has(topic);
  }

  /** How long the session has been down (ms), 0 while up. */
  downForMs(): number {
    return this.#downSince === undefined ? 0 : this.#o.monotonic() - this.#downSince;
  }

  start(): void {
    void this.#connect();
  }

  /** Resolves on PUBACK (QoS 1); rejects when the session ends first. */
  publish(topic: string, payload: string | Buffer, retain = false): Promise<void> {
    const client = this.#client;
    if (client === undefined || !this.#up) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, { qos: 1, retain }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Drops the current connection now (e.g. a PUBACK that never came); reconnects. */
  reset(reason: string): void {
    this.#o.logger.warn({ reason }, 'resetting the MQTT session');
    this.#client?.end(true);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#renewTimer);
    const client = this.#client;
    if (client === undefined) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => client.end(true, () => resolve()), 2000);
      client.end(false, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const { logger } = this.#o;
    let password: string;
    let lifetimeMs: number;
    try {
      const token = await this.#o.tokens.fresh();
      password = token.token;
      lifetimeMs = token.lifetimeMs;
    } catch (err) {
      logger.error({ err }, 'cannot sign a device JWT');
      this.#scheduleRetry();
      return;
    }
    if (this.#stopped) return;
    let client: MqttClient;
    try {
      client = this.#open(password);
    } catch (err) {
      logger.error({ err, url: this.#o.url }, 'cannot open an MQTT connection');
      this.#scheduleRetry();
      return;
    }
    this.#client = client;
    this.#wire(client, lifetimeMs);
  }

  #open(password: string): MqttClient {
    return mqtt.connect(this.#o.url, {
      protocolVersion: 4,
      // mqtt-packet otherwise pre-builds a Buffer for each of the 65,536 message ids: 6 MiB
      // of heap on a gateway that sends a few packets a second.
      writeCache: false,
      clientId: this.#o.deviceId,
      username: this.#o.deviceId,
      password,
      // A persistent session: commands published while we were away are delivered on return.
      clean: false,
      reconnectPeriod: 0,
      connectTimeout: this.#o.connectTimeoutMs ?? 10_000,
      keepalive: this.#o.keepaliveS ?? 30,
      resubscribe: false,
      rejectUnauthorized: this.#o.rejectUnauthorized ?? true,
    });
  }

  #subscribeOptional(client: MqttClient): void {
    const topics = this.#o.optionalSubscriptions ?? [];
    if (topics.length === 0) return;
    client.subscribe([...topics], { qos: 1 }, (err, _granted, suback) => {
      if (this.#client !== client) return;
      // The SUBACK's return codes, one per topic in the order sent (one packet: no
      // subscribeBatchSize). Not the `granted` list: when any topic is refused, mqtt.js
      // hands that back with the QoS asked for, not the code the broker answered.
      const answers = new Map<string, boolean>();
      topics.forEach((topic, i) => {
        const code = suback?.granted[i];
        if (typeof code === 'number') answers.set(topic, (code & 0x80) === 0);
      });
      for (const [topic, ok] of answers) if (ok) this.#granted.add(topic);
      if (answers.size > 0) this.#o.onOptionalSubscribed?.(answers);
      if (err === null || err === undefined) return;
      const refused = [...answers]
        .filter(([, ok]) => !ok)
        .map(([topic]) => topic)
        .slice(0, 20);
      this.#o.logger.warn(
        { refused, err: err.message },
        'the broker refused child command topics: are these children registered with this gateway?',
      );
    });
  }

  #wire(client: MqttClient, lifetimeMs: number): void {
    const { logger, metrics } = this.#o;
    /** Monotonic ms of this connection's CONNACK. */
    let connectedAt: number | undefined;
    client.on('connect', () => {
      connectedAt = this.#o.monotonic();
      metrics.connects.inc({ result: 'accepted' });
      client.subscribe([...this.#o.subscriptions], { qos: 1 }, (err) => {
        if (err || this.#client !== client) {
          if (err) logger.warn({ err }, 'subscribe failed');
          client.end(true);
          return;
        }
        this.#subscribeOptional(client);
        this.#up = true;
        this.#downSince = undefined;
        metrics.connected.set(1);
        logger.info({ url: this.#o.url }, 'connected to the ingest');
        const renewIn = Math.max(1000, lifetimeMs * (this.#o.renewAt ?? 0.8));
        this.#renewTimer = setTimeout(() => this.#renew(client), renewIn);
        this.#renewTimer.unref();
        this.#o.onUp();
      });
    });
    client.on('message', (topic, payload) => this.#o.onMessage(topic, payload));
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      if (connectedAt === undefined) {
        metrics.connects.inc({ result: typeof code === 'number' ? `connack_${code}` : 'error' });
      }
      logger.warn({ err: err.message, code }, 'MQTT error');
    });
    client.on('close', () => {
      if (this.#client !== client) return;
      this.#client = undefined;
      clearTimeout(this.#renewTimer);
      const wasUp = this.#up;
      const renewing = this.#renewing;
      this.#up = false;
      this.#granted.clear();
      this.#renewing = false;
      this.#downSince ??= this.#o.monotonic();
      metrics.connected.set(0);
      client.end(true);
      const upForMs = connectedAt === undefined ? undefined : this.#o.monotonic() - connectedAt;
      // Decided for a renewal too: the connection after it may be the one that fails.
      this.#attempt = attemptAfterClose(
        this.#attempt,
        upForMs,
        this.#o.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS,
      );
      if (wasUp) {
        if (!renewing && !this.#stopped) logger.warn({ upForMs }, 'disconnected from the ingest');
        this.#o.onDown(renewing ? 'renew' : 'closed');
      }
      if (renewing) void this.#connect();
      else this.#scheduleRetry();
    });
  }

  #scheduleRetry(): void {
    if (this.#stopped) return;
    const delay = backoffDelay(
      this.#attempt++,
      this.#o.random(),
      this.#o.backoff ?? DEFAULT_BACKOFF,
    );
    this.#o.logger.debug({ delayMs: delay, attempt: this.#attempt }, 'reconnecting after backoff');
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }

  /** PROTOCOL.md §3: reconnect with a fresh token before the broker closes us at `exp`. */
  #renew(client: MqttClient): void {
    if (this.#client !== client || this.#stopped) return;
    this.#renewing = true;
    this.#o.logger.info('renewing the device JWT: reconnecting');
    const force = setTimeout(() => client.end(true), 5000);
    force.unref();
    client.end(false, () => clearTimeout(force));
  }
}
