import { randomBytes } from 'node:crypto';
import { type Command, commandSchema } from '@outpost/protocol/commands';
import { topics } from '@outpost/protocol/topics';
import { signBatch } from '@outpost/signing/batch';
import { verifyCommand } from '@outpost/signing/command';
import { signDeviceJwt } from '@outpost/signing/device-jwt';
import type { BackoffOptions } from './backoff.js';
import { BatchOutbox, type OutboxBatch } from './batch-outbox.js';
import {
  type Device,
  type DeviceFault,
  type DeviceStats,
  type MqttCounters,
  ReadingSource,
} from './device.js';
import { type DirectIdentity, type IdentityContext, resolveIdentity } from './device-identity.js';
import { localMessages } from './local-messages.js';
import { type ConnectCredentials, MqttSession, type MqttSessionEvent } from './mqtt-session.js';
import { deriveSeed } from './random.js';
import type { MqttDeviceConfig, MqttDirectLink } from './scenario.js';
import { BatchBuilder, type TimedReading } from './telemetry-batch.js';

export interface MqttDeviceOptions {
  /** A direct device's identity when already known; otherwise it gets one at start. */
  identity?: DirectIdentity;
  /**
   * Where a direct device without `identity` enrolls or finds its credentials; `server`
   * here overrides the configured one.
   */
  identityContext?: Pick<IdentityContext, 'server' | 'adminToken' | 'baseDir'>;
  /** Wall clock, epoch ms; the device's own clock adds its skew. */
  now?: () => number;
  /** For reconnect jitter. */
  random?: () => number;
  backoff?: BackoffOptions;
  /** How long `stop()` waits for unacknowledged batches; default 10 s. */
  drainTimeoutMs?: number;
  /** No PUBACK for this long: the connection is reset and the batch sent again; default 30 s. */
  ackTimeoutMs?: number;
  /** Hears about connections, refusals and bad commands; nothing is reported per reading. */
  onEvent?: (event: MqttDeviceEvent) => void;
}

export type MqttDeviceEvent =
  | MqttSessionEvent
  | { type: 'command'; command: Command['type'] }
  | { type: 'command-refused'; message: string }
  | { type: 'batch-rejected'; seq: [number, number]; reason: string }
  | { type: 'error'; message: string };

/** Readings due closer together than this are made together (one timer per device). */
const MIN_TICK_MS = 10;
/** A device JWT is renewed at this fraction of its lifetime. */
const RENEW_AT = 0.8;

const NO_FIRMWARE = {
  begins: 0,
  chunksOk: 0,
  errors: 0,
  updates: 0,
  reverts: 0,
  lastError: undefined,
};

/**
 * A simulated MQTT device. `direct`: straight to the ingest (PROTOCOL.md §3–§5): it has an
 * enrolled identity, connects with a fresh device JWT each time (renewed before it expires),
 * publishes signed batches (a new `boot` per start, `seq` numbering its records) or bare
 * SenML packs, and reads its commands (`telemetry.rejected`, `ping`), verified against the
 * JWKS. `local`: to a site's broker in number, JSON or SenML form, the way sensors feed the
 * edge agent. Either way, readings wait in a bounded in-memory outbox until their message
 * is acknowledged, and are sent again after a reconnect, so the counters are exact.
 */
export class MqttDevice implements Device {
  readonly id: string;
  readonly #config: MqttDeviceConfig;
  readonly #options: MqttDeviceOptions;
  readonly #now: () => number;
  readonly #source: ReadingSource;
  readonly #outbox: BatchOutbox;
  readonly #qos: 0 | 1;
  readonly #commands: MqttCounters['commands'] = {
    received: 0,
    invalid: 0,
    rejected: 0,
    unmatched: 0,
    ping: 0,
    other: 0,
  };
  #identity: DirectIdentity | undefined;
  #builder: BatchBuilder | undefined;
  #session: MqttSession | undefined;
  #running = false;
  #startedAt = 0;
  #index = 0;
  #clockSkewMs: number;
  #silentUntil = 0;
  #badBatches = 0;
  #made = 0;
  #skipped = 0;
  #signErrors = 0;
  #ackTimeouts = 0;
  /** The batch being filled (direct). */
  #open: TimedReading[] = [];
  #openedAt = 0;
  /** Closed batches being signed, in order. */
  #signing: Promise<void> = Promise.resolve();
  #signingReadings = 0;
  #signingBatches = 0;
  #wakeTimer: NodeJS.Timeout | undefined;
  #drainWaiters: (() => void)[] = [];

  constructor(config: MqttDeviceConfig, options: MqttDeviceOptions = {}) {
    this.id = config.id;
    this.#config = config;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#source = new ReadingSource(config.metrics, deriveSeed(config.seed, config.id));
    this.#outbox = new BatchOutbox(config.window);
    this.#qos = config.link.mode === 'local' ? config.link.qos : 1;
    this.#clockSkewMs = config.clockSkewMs;
    this.#identity = options.identity;
  }

  /** Gets the identity (a direct device may enroll here), then runs; resolves before connecting. */
  async start(): Promise<void> {
    if (this.#running) return;
    const link = this.#config.link;
    let session: MqttSession;
    if (link.mode === 'direct') {
      const identity = await this.#directIdentity(link);
      const url = link.broker ?? identity.broker;
      if (url === undefined) throw new Error('no MQTT broker URL (give broker:)');
      this.#builder = new BatchBuilder(this.id, {
        // PROTOCOL.md §5: a random boot id per start keeps (publisher, boot, seq) unique.
        boot: randomBytes(8).toString('hex'),
        signed: link.signed,
      });
      session = this.#newSession(url, this.id, () => this.#deviceJwt(identity, link), [
        topics.commands(this.id),
      ]);
    } else {
      const credentials: ConnectCredentials = {};
      if (link.username !== undefined) credentials.username = link.username;
      if (link.password !== undefined) credentials.password = link.password;
      session = this.#newSession(link.broker, link.clientId, async () => credentials, []);
    }
    this.#session = session;
    this.#running = true;
    this.#startedAt = this.#now();
    this.#index = 0;
    session.start();
    this.#wake();
  }

  /**
   * Stops making readings, closes the open batch, waits (up to the drain timeout) until
   * everything made was acknowledged, and disconnects. What is still unacknowledged then
   * stays counted as pending, never as sent.
   */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    if (this.#open.length > 0) this.#closeBatch();
    await this.#signing;
    this.#pump();
    await this.#drained(this.#options.drainTimeoutMs ?? 10_000);
    await this.#session?.stop();
  }

  inject(fault: DeviceFault): void {
    const now = this.#now();
    switch (fault.kind) {
      case 'clockSkew':
        this.#clockSkewMs = fault.byMs;
        break;
      case 'silence':
        this.#silentUntil = Math.max(this.#silentUntil, now + fault.forMs);
        break;
      case 'unplug':
        this.#session?.unplug(fault.forMs);
        break;
      case 'stuck':
        this.#source.stick(fault.metric, (now - this.#startedAt) / 1000, fault.forMs / 1000);
        break;
      case 'badBatch':
        this.#badBatches += fault.batches;
        break;
      default:
        // Line and flash faults belong to serial devices; the scenario does not send them here.
        break;
    }
  }

  stats(): DeviceStats {
    const counters = this.#outbox.counters();
    const session = this.#session?.counters ?? {
      connects: 0,
      connectFailures: 0,
      disconnects: 0,
      renewals: 0,
    };
    const sent: Record<string, number> = {};
    for (const metric of this.#source.metrics) sent[metric] = counters.values[metric] ?? 0;
    return {
      id: this.id,
      transport: 'mqtt',
      ...this.#config.identity,
      sent,
      readings: counters.readings.acked,
      garbageLines: 0,
      badCrcLines: 0,
      partialLines: 0,
      skipped: this.#skipped,
      writeErrors: this.#signErrors,
      opens: session.connects,
      connected: this.#session?.up === true,
      clockSkewMs: this.#clockSkewMs,
      firmware: { ...NO_FIRMWARE },
      mqtt: {
        madeReadings: this.#made,
        publishedReadings: counters.readings.published,
        ackedReadings: counters.readings.acked,
        rejectedReadings: counters.readings.rejected,
        pendingReadings: this.#pendingReadings(),
        batches: {
          ...counters.batches,
          pending: this.#outbox.pendingBatches + this.#signingBatches,
        },
        connects: session.connects,
        reconnects: Math.max(0, session.connects - 1),
        connectFailures: session.connectFailures,
        disconnects: session.disconnects,
        renewals: session.renewals,
        ackTimeouts: this.#ackTimeouts,
        commands: { ...this.#commands },
      },
    };
  }

  // --- identity and session ----------------------------------------------------------------

  async #directIdentity(link: MqttDirectLink): Promise<DirectIdentity> {
    this.#identity ??= await resolveIdentity(this.id, link.credentials, {
      server: this.#options.identityContext?.server ?? link.server,
      adminToken: this.#options.identityContext?.adminToken,
      baseDir: this.#options.identityContext?.baseDir ?? process.cwd(),
      unsigned: !link.signed,
      now: () => this.#deviceNow(),
    });
    return this.#identity;
  }

  #newSession(
    url: string,
    clientId: string,
    credentials: () => Promise<ConnectCredentials>,
    subscriptions: string[],
  ): MqttSession {
    const onEvent = this.#options.onEvent;
    return new MqttSession({
      url,
      clientId,
      credentials,
      subscriptions,
      random: this.#options.random ?? Math.random,
      now: this.#now,
      ...(this.#options.backoff === undefined ? {} : { backoff: this.#options.backoff }),
      onUp: () => this.#pump(),
      onDown: () => this.#outbox.requeue(),
      onMessage: (topic, payload) => void this.#onMessage(topic, payload),
      ...(onEvent === undefined ? {} : { onEvent }),
    });
  }

  /** PROTOCOL.md §3: clientId = username = device id, password = a fresh device JWT. */
  async #deviceJwt(identity: DirectIdentity, link: MqttDirectLink): Promise<ConnectCredentials> {
    const now = this.#now();
    const deviceNow = now + this.#clockSkewMs;
    const { token, claims } = await signDeviceJwt(identity.key, {
      deviceId: this.id,
      audience: identity.audience,
      lifetimeS: link.jwtLifetimeS,
      now: () => deviceNow / 1000,
    });
    // `iat` is whole seconds, so the token may have up to a second less to live than asked.
    const lifeMs = Math.max(0, claims.exp * 1000 - deviceNow);
    return { username: this.id, password: token, renewAt: now + lifeMs * RENEW_AT };
  }

  #deviceNow(): number {
    return this.#now() + this.#clockSkewMs;
  }

  // --- readings ----------------------------------------------------------------------------

  #periodMs(): number {
    return 1000 / this.#config.ratePerS;
  }

  #dueAt(index: number): number {
    return this.#startedAt + index * this.#periodMs();
  }

  #wake(): void {
    this.#wakeTimer = undefined;
    if (!this.#running) return;
    const now = this.#now();
    this.#makeDueReadings(now);
    const link = this.#config.link;
    if (
      link.mode === 'direct' &&
      this.#open.length > 0 &&
      now >= this.#openedAt + link.batchIntervalMs
    ) {
      this.#closeBatch();
    }
    this.#checkAcks(now);
    this.#pump();
    let next = this.#dueAt(this.#index);
    if (link.mode === 'direct' && this.#open.length > 0) {
      next = Math.min(next, this.#openedAt + link.batchIntervalMs);
    }
    this.#wakeTimer = setTimeout(() => this.#wake(), Math.max(MIN_TICK_MS, next - now));
  }

  /**
   * Makes every reading due by `now`, stamped with its due time on the device's clock, so
   * a late timer delays readings but never drops or bunches their times. Readings due while
   * the device is silent, or while its outbox is full, are skipped.
   */
  #makeDueReadings(now: number): void {
    const link = this.#config.link;
    for (let due = this.#dueAt(this.#index); due <= now; due = this.#dueAt(this.#index)) {
      this.#index++;
      const values = this.#source.sample((due - this.#startedAt) / 1000);
      if (due < this.#silentUntil || this.#pendingReadings() >= this.#config.maxPendingReadings) {
        this.#skipped++;
        continue;
      }
      this.#made++;
      const reading: TimedReading = { timeMs: Math.round(due + this.#clockSkewMs), values };
      if (link.mode === 'local') {
        const perMetric: Record<string, number> = {};
        for (const [metric] of values) perMetric[metric] = 1;
        this.#outbox.add({
          seq: undefined,
          readings: 1,
          values: perMetric,
          messages: localMessages(this.id, reading, link.format),
        });
        continue;
      }
      if (this.#open.length === 0) this.#openedAt = due;
      this.#open.push(reading);
      if (this.#open.length >= link.batchSize) this.#closeBatch();
    }
  }

  /** Numbers the open batch now (seq in order), signs it in turn, then queues it. */
  #closeBatch(): void {
    const builder = this.#builder!;
    const identity = this.#identity!;
    const readings = this.#open;
    this.#open = [];
    const broken = this.#badBatches > 0;
    if (broken) this.#badBatches--;
    const built = builder.build(readings, broken);
    this.#signingReadings += built.readings;
    this.#signingBatches++;
    const topic = topics.telemetry(this.id);
    this.#signing = this.#signing.then(async () => {
      try {
        const payload =
          'v' in built.body
            ? await signBatch(identity.key, built.body)
            : JSON.stringify(built.body);
        const batch: OutboxBatch = {
          seq: built.seq,
          readings: built.readings,
          values: built.values,
          messages: [{ topic, payload }],
        };
        this.#outbox.add(batch);
      } catch (err) {
        this.#signErrors++;
        this.#options.onEvent?.({ type: 'error', message: `signing: ${(err as Error).message}` });
      } finally {
        this.#signingReadings -= built.readings;
        this.#signingBatches--;
      }
      this.#pump();
    });
  }

  #pendingReadings(): number {
    return this.#open.length + this.#signingReadings + this.#outbox.pendingReadings;
  }

  // --- publishing ----------------------------------------------------------------------------

  /** Sends what the window has room for, oldest first. */
  #pump(): void {
    const session = this.#session;
    const now = this.#now();
    if (session === undefined || !session.up || now < this.#silentUntil) return;
    for (const entry of this.#outbox.takeDue(now)) {
      const batch = entry.batch;
      for (const index of [...entry.unacked]) {
        const message = batch.messages[index]!;
        session.publish(message.topic, message.payload, this.#qos).then(
          () => {
            this.#outbox.ack(batch, index);
            this.#progress();
          },
          // The connection ended first: the batch goes out again on the next one.
          () => {},
        );
      }
    }
  }

  /** A PUBACK that does not come means a stuck session: reset it, which resends. */
  #checkAcks(now: number): void {
    const oldest = this.#outbox.oldestInflightSentAt();
    if (oldest === undefined || this.#session?.up !== true) return;
    if (now - oldest > (this.#options.ackTimeoutMs ?? 30_000)) {
      this.#ackTimeouts++;
      this.#session.reset();
    }
  }

  #progress(): void {
    this.#pump();
    if (this.#pendingReadings() === 0) for (const done of this.#drainWaiters.splice(0)) done();
  }

  #drained(timeoutMs: number): Promise<void> {
    if (this.#pendingReadings() === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#drainWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // --- commands ----------------------------------------------------------------------------

  async #onMessage(topic: string, payload: Buffer): Promise<void> {
    // A silent device hears nothing either.
    if (topic !== topics.commands(this.id) || this.#now() < this.#silentUntil) return;
    const c = this.#commands;
    c.received++;
    const jwks = this.#identity?.jwks;
    let command: Command;
    try {
      if (jwks === undefined) throw new Error('no service JWKS to verify commands with');
      // PROTOCOL.md §8: ignore commands whose signature, exp or target does not check out.
      const verified = await verifyCommand(payload.toString('utf8'), {
        keys: jwks,
        deviceId: this.id,
        schema: commandSchema,
        now: () => this.#deviceNow() / 1000,
      });
      command = verified.payload;
    } catch (err) {
      c.invalid++;
      this.#options.onEvent?.({ type: 'command-refused', message: (err as Error).message });
      return;
    }
    this.#options.onEvent?.({ type: 'command', command: command.type });
    switch (command.type) {
      case 'telemetry.rejected': {
        const outcome =
          command.boot === this.#builder?.boot ? this.#outbox.reject(command.seq) : 'unknown';
        if (outcome === 'unknown') c.unmatched++;
        else c.rejected++;
        this.#options.onEvent?.({
          type: 'batch-rejected',
          seq: [command.seq[0], command.seq[1]],
          reason: command.reason,
        });
        this.#progress();
        break;
      }
      case 'ping':
        c.ping++;
        break;
      default:
        c.other++;
        break;
    }
  }
}
