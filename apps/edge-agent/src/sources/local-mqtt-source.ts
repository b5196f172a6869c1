import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { MAX_TOPIC_LENGTH } from '@outpost/protocol/limits';
import type { Aedes, AuthenticateError } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { MqttFrameGuard } from './mqtt-frame-guard.js';
import type { Clock, PortStatus, ReadingSink, Source } from './source.js';
import type { MqttSourceConfig } from './source-config.js';
import { TopicMapper } from './topic-mapping.js';

export interface LocalMqttSourceOptions {
  sink: ReadingSink;
  /** Wall clock: stamps readings whose payload carries no time. */
  clock: Clock;
  logger?: Logger;
}

export interface MqttSourceStats {
  /** Messages received on any topic. */
  messages: number;
  readings: number;
  /** Messages on topics no mapping names. */
  unmatched: number;
  badPayloads: number;
  badPayloadsByReason: Record<string, number>;
  /** `listen`: connections refused (credentials, oversized packets). */
  refusedConnections: number;
  /** `listen`: clients connected now; `connect`: 1 while connected to the broker. */
  connected: number;
}

/** Largest CONNECT packet: client id, username and password fit easily. */
const MAX_CONNECT_BYTES = 4 * 1024;
/** [MQTT-3.1.0] CONNACK return code 4: bad user name or password. */
const BAD_USERNAME_OR_PASSWORD = 4;

interface Credential {
  username: Buffer;
  password: Buffer;
}

const sha256 = (value: string | Buffer) => createHash('sha256').update(value).digest();

/**
 * Local sensors over MQTT: an embedded aedes listener (`listen`) or a subscription to an
 * existing local broker (`connect`). Messages are mapped to readings by {@link TopicMapper};
 * bad payloads are counted, never thrown. The listener bounds packets before aedes buffers
 * them, compares credentials in constant time, and admits anonymous clients only when told.
 */
export class LocalMqttSource implements Source {
  readonly kind = 'mqtt';
  readonly #config: MqttSourceConfig;
  readonly #sink: ReadingSink;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  readonly #mapper: TopicMapper;
  readonly #credentials: Credential[];
  readonly #stats: MqttSourceStats = {
    messages: 0,
    readings: 0,
    unmatched: 0,
    badPayloads: 0,
    badPayloadsByReason: {},
    refusedConnections: 0,
    connected: 0,
  };
  #aedes: Aedes | undefined;
  #server: Server | undefined;
  #client: MqttClient | undefined;
  #address: { host: string; port: number } | undefined;

  constructor(config: MqttSourceConfig, options: LocalMqttSourceOptions) {
    this.#config = config;
    this.#sink = options.sink;
    this.#clock = options.clock;
    this.#log = options.logger?.child({ module: 'local-mqtt-source' });
    this.#mapper = new TopicMapper(config.topics);
    this.#credentials = (config.users ?? []).map((u) => ({
      username: sha256(u.username),
      password: sha256(u.password),
    }));
  }

  /** The bound listen address (the real port when 0 was asked for). */
  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  async start(): Promise<void> {
    if (this.#config.listen !== undefined) await this.#listen(this.#config.listen);
    else this.#connect(this.#config.connect!);
  }

  async stop(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await client.endAsync(true);
    const server = this.#server;
    this.#server = undefined;
    const closed =
      server === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => server.close(() => resolve()));
    const aedes = this.#aedes;
    this.#aedes = undefined;
    if (aedes !== undefined) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await closed;
    this.#stats.connected = 0;
  }

  /** Not a serial port: nothing for the state report's `ports`. */
  status(): PortStatus[] {
    return [];
  }

  stats(): MqttSourceStats {
    return { ...this.#stats, badPayloadsByReason: { ...this.#stats.badPayloadsByReason } };
  }

  // --- embedded listener -----------------------------------------------------------------

  async #listen(address: { host: string; port: number }): Promise<void> {
    // Loaded only when a listener is configured: aedes and its dependencies cost ~12 MB of
    // resident memory that a gateway without local MQTT sensors should not pay.
    const { Aedes } = await import('aedes');
    const aedes = await Aedes.createBroker({
      id: 'outpost-agent-local',
      connectTimeout: 10_000,
      maxTopicLevels: 16,
      maxInflightInbound: 100,
    });
    this.#aedes = aedes;
    aedes.authenticate = (_client, username, password, done) => {
      if (this.#admits(username, password)) {
        done(null, true);
        return;
      }
      this.#stats.refusedConnections++;
      const error = Object.assign(new Error('bad user name or password'), {
        returnCode: BAD_USERNAME_OR_PASSWORD,
      }) as AuthenticateError;
      done(error, false);
    };
    aedes.authorizePublish = (_client, packet, done) => {
      if (packet.payload.length > this.#config.maxPayloadBytes) {
        this.#bad('too_large');
        done(new Error('payload too large'));
        return;
      }
      done(null);
    };
    // After aedes accepted it (QoS 2 duplicates included only once).
    aedes.on('publish', (packet, client) => {
      if (client === null || client === undefined) return; // the broker's own $SYS messages
      const payload =
        typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      this.#onMessage(packet.topic, payload);
    });
    aedes.on('client', () => this.#stats.connected++);
    aedes.on('clientDisconnect', () => {
      this.#stats.connected = Math.max(0, this.#stats.connected - 1);
    });
    aedes.on('clientError', (client, err) =>
      this.#log?.debug({ clientId: client.id, err: err.message }, 'local mqtt client error'),
    );

    const maxPacketBytes = this.#config.maxPayloadBytes + MAX_TOPIC_LENGTH + 16;
    const server = createServer((socket: Socket) => {
      const guard = new MqttFrameGuard(maxPacketBytes, MAX_CONNECT_BYTES);
      const guarded = new GuardedSocket(socket, guard, (reason) => {
        this.#stats.refusedConnections++;
        this.#bad('too_large');
        this.#log?.debug({ reason }, 'local mqtt connection dropped');
      });
      guarded.on('error', () => {});
      aedes.handle(guarded);
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address.host, port: address.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
    this.#address = { host: address.host, port };
    this.#log?.info({ host: address.host, port }, 'local mqtt listener started');
  }

  /** Every configured user is compared, in constant time, whatever matches first. */
  #admits(username: string | undefined, password: Buffer | undefined): boolean {
    if (username === undefined && password === undefined) return this.#config.allowAnonymous;
    const user = sha256(username ?? '');
    const pass = sha256(password ?? Buffer.alloc(0));
    let ok = false;
    for (const credential of this.#credentials) {
      const userOk = timingSafeEqual(user, credential.username);
      const passOk = timingSafeEqual(pass, credential.password);
      ok = (userOk && passOk) || ok;
    }
    return ok;
  }

  // --- existing broker -------------------------------------------------------------------

  #connect(url: string): void {
    const { username, password, clientId } = this.#config;
    const client = mqtt.connect(url, {
      protocolVersion: 4,
      writeCache: false, // see uplink/mqtt-session.ts
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
      clean: true,
      ...(clientId === undefined ? {} : { clientId }),
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
    });
    this.#client = client;
    const filters = this.#config.topics.map((t) => t.filter);
    client.on('connect', () => {
      this.#stats.connected = 1;
      client.subscribe(filters, { qos: 1 }, (err) => {
        if (err) this.#log?.warn({ err: err.message }, 'local mqtt subscribe failed');
      });
      this.#log?.info({ url: redactUrl(url) }, 'connected to local mqtt broker');
    });
    client.on('close', () => {
      this.#stats.connected = 0;
    });
    client.on('error', (err) =>
      this.#log?.debug({ err: err.message }, 'local mqtt broker connection error'),
    );
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
  }

  // --- messages --------------------------------------------------------------------------

  #onMessage(topic: string, payload: Buffer): void {
    this.#stats.messages++;
    if (payload.length > this.#config.maxPayloadBytes) {
      this.#bad('too_large');
      return;
    }
    const result = this.#mapper.map(topic, payload, this.#clock.now() / 1000);
    if (result.kind === 'unmatched') {
      this.#stats.unmatched++;
      return;
    }
    if (result.kind === 'bad') {
      this.#bad(result.reason);
      return;
    }
    this.#stats.readings += result.readings.length;
    try {
      this.#sink(result.readings);
    } catch (err) {
      this.#log?.error({ err }, 'reading sink failed');
    }
  }

  #bad(reason: string): void {
    this.#stats.badPayloads++;
    const byReason = this.#stats.badPayloadsByReason;
    byReason[reason] = (byReason[reason] ?? 0) + 1;
  }
}

/**
 * A client socket whose bytes pass the frame guard before aedes sees them: a packet over
 * the limit ends the connection at its header, and aedes never reads any of it.
 */
class GuardedSocket extends Duplex {
  readonly remoteAddress: string | undefined;

  constructor(
    private readonly socket: Socket,
    guard: MqttFrameGuard,
    onRefused: (reason: string) => void,
  ) {
    super({ allowHalfOpen: false });
    this.remoteAddress = socket.remoteAddress;
    socket.on('data', (chunk: Buffer) => {
      const verdict = guard.check(chunk);
      if (!verdict.ok) {
        onRefused(verdict.reason);
        this.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (err?: Error | null) => void,
  ): void {
    if (this.socket.destroyed) callback(new Error('connection closed'));
    else this.socket.write(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
