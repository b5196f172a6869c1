import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { mayPublish, maySubscribe } from '@outpost/protocol/acl';
import type { Command } from '@outpost/protocol/commands';
import { isAppError } from '@outpost/protocol/errors';
import { deviceEventSchema } from '@outpost/protocol/events';
import { reportedStateSchema } from '@outpost/protocol/state';
import { isValidTopicString, parseTopic, TOPIC_CHANNELS, topics } from '@outpost/protocol/topics';
import { signCommand } from '@outpost/signing/command';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { AedesRedis } from '../cluster/aedes-redis.js';
import type { IngestConfig } from '../config.js';
import { CLOCK, type Clock, CONFIG, LOGGER, METRICS, REGISTRY_STORE } from '../injection.js';
import { ServiceKeys } from '../keys/service-keys.js';
import { RegistryEvents } from '../registry/registry-events.js';
import type { RegistryStore } from '../registry/registry-store.js';
import { LiveEvents } from '../stream/live-events.js';
import { TelemetryRejected } from '../telemetry/normalize-batch.js';
import { TelemetryService } from '../telemetry/telemetry.service.js';
import {
  authenticateDevice,
  CONNACK,
  ConnectionRefused,
  type DeviceSession,
} from './broker-auth.js';
import { ConnectivityTracker, WindowCounter } from './connectivity.js';
import { loadTlsCredentials } from './dev-certificate.js';
import { GuardedConnection } from './guarded-connection.js';
import { LostSessions } from './lost-sessions.js';

/** Largest CONNECT packet: client id, username and a device JWT fit easily. */
const MAX_CONNECT_BYTES = 8 * 1024;
/** How long a client id that keeps taking itself over is refused. */
const TAKEOVER_COOLDOWN_MS = 30_000;
/** Commands expire after this long unless the caller says otherwise. */
const COMMAND_TTL_S = 3600;
// How long closing the broker may wait for aedes: its Redis emitter's QUIT cannot finish
// while Redis is unreachable, hence the shorter wait then.
const CLOSE_TIMEOUT_MS = 5000;
const CLOSE_TIMEOUT_REDIS_DOWN_MS = 1000;
/** aedes announces each registered client here; in cluster mode to every replica. */
const NEW_CLIENTS_TOPIC = '$SYS/+/new/clients';

/** What the broker uses of aedes beyond its typings: the emitter and a separate listen(). */
interface AedesInternals {
  mq: {
    on(topic: string, handler: (packet: PublishPacket, done: () => void) => void): void;
    emit(packet: PublishPacket, done?: (err?: Error) => void): void;
  };
  listen(): Promise<void>;
}

/** A topic devices publish to and nobody subscribes to: `v1/devices/{id}/telemetry|state|events`. */
function isDeviceUplink(topic: string): boolean {
  const parsed = parseTopic(topic);
  return parsed !== null && TOPIC_CHANNELS[parsed.channel].direction === 'device_to_cloud';
}

/** A command as callers give it: the envelope (`v`, `id`, `exp`, `device`) is added here. */
type CommandBody = Command extends infer C
  ? C extends Command
    ? Omit<C, 'v' | 'id' | 'exp' | 'device'>
    : never
  : never;

export interface DeviceEventMessage {
  deviceId: string;
  event: ReturnType<typeof deviceEventSchema.parse>;
}

/** A session subscribed to `deviceId`'s commands topic (its own, or a gateway's child's). */
export interface CommandsSubscription {
  deviceId: string;
  subscriber: string;
}

/**
 * The embedded MQTT broker (aedes) on TCP, TLS and WebSocket, with device identity
 * (PROTOCOL.md §3), the topic ACL (§4), and refusals as §9 says. aedes' defaults are
 * hardened here: packet size bounded before buffering, empty client ids and wildcards
 * refused, takeover loops damped, devices that keep sending bad input disconnected.
 */
@Injectable()
export class Broker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private aedes: Aedes | undefined;
  /** Cluster mode: aedes' Redis persistence and emitter. */
  private aedesRedis: AedesRedis | undefined;
  private tcp: TcpServer | undefined;
  private tls: TlsServer | undefined;
  private ws: WebSocketServer | undefined;
  private httpServer: HttpServer | undefined;
  private readonly sessions = new Map<Client, DeviceSession>();
  private readonly expiry = new Map<Client, NodeJS.Timeout>();
  private readonly connectivity: ConnectivityTracker;
  private readonly pendingStates = new Map<
    string,
    { state: unknown; pending: number; at: number }
  >();
  private readonly refusals = new WindowCounter(60_000);
  private readonly takeovers = new WindowCounter(60_000);
  private readonly cooldownUntil = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly listeners: (() => void)[] = [];
  private readonly eventHandlers = new Set<(m: DeviceEventMessage) => void>();
  private readonly subscribeHandlers = new Set<(s: CommandsSubscription) => void>();
  private readonly sessionsGauge: Gauge;
  private readonly refusedConnections: Counter<'reason'>;
  private readonly refusedMessages: Counter<'reason'>;
  /** Bound TCP and TLS ports (differ from the configured ones when those are 0 in tests). */
  readonly ports = { mqtt: 0, mqtts: 0 };

  constructor(
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(LOGGER) logger: Logger,
    @Inject(REGISTRY_STORE) private readonly store: RegistryStore,
    @Inject(METRICS) metrics: Registry,
    private readonly telemetry: TelemetryService,
    private readonly keys: ServiceKeys,
    private readonly events: RegistryEvents,
    private readonly adapterHost: HttpAdapterHost,
    private readonly live: LiveEvents,
    private readonly lostSessions: LostSessions,
  ) {
    this.log = logger.child({ module: 'broker' });
    this.connectivity = new ConnectivityTracker(config.replicaId);
    this.sessionsGauge = new Gauge({
      name: 'outpost_ingest_mqtt_sessions',
      help: 'Authenticated MQTT sessions',
      registers: [metrics],
      collect: () => this.sessionsGauge.set(this.sessions.size),
    });
    this.refusedConnections = new Counter({
      name: 'outpost_ingest_mqtt_connections_refused_total',
      help: 'MQTT connections refused, by reason',
      labelNames: ['reason'],
      registers: [metrics],
    });
    this.refusedMessages = new Counter({
      name: 'outpost_ingest_mqtt_messages_refused_total',
      help: 'MQTT publishes and subscriptions refused by the ACL or as malformed, by reason',
      labelNames: ['reason'],
      registers: [metrics],
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    // Devices the registry shows online through a previous run of this process are not:
    // recorded offline before any of them can connect again.
    await this.lostSessions.serverStarted();
    // Cluster mode: sessions, subscriptions and QoS 1 in-flight and offline messages live in
    // Redis, and every publish reaches every replica (cluster/aedes-redis.ts).
    if (this.config.redisUrl) {
      const { openAedesRedis } = await import('../cluster/aedes-redis.js');
      this.aedesRedis = openAedesRedis(this.config.redisUrl, this.log);
    }
    const aedes = new Aedes({
      id: `outpost-${this.config.replicaId}-${randomUUID().slice(0, 8)}`,
      // Devices publish QoS 1 at most; the cap bounds a client that withholds PUBRELs.
      maxInflightInbound: 100,
      maxTopicLevels: 8,
      drainTimeout: 30_000,
      connectTimeout: 10_000,
      heartbeatInterval: 60_000,
      ...(this.aedesRedis
        ? { persistence: this.aedesRedis.persistence, mq: this.aedesRedis.mq }
        : {}),
    });
    const internals = aedes as unknown as AedesInternals;
    // Device → cloud messages (telemetry, state, events) are consumed in authorizePublish and
    // nobody may subscribe to them (PROTOCOL.md §4), so after the PUBACK they need not go
    // through the emitter. In cluster mode that emitter is Redis: skipping it spares every
    // batch a round trip through Redis and its encoding (bench/README.md has the numbers).
    const emit = internals.mq.emit.bind(internals.mq);
    internals.mq.emit = (packet, done) => {
      if (isDeviceUplink(packet.topic)) done?.();
      else emit(packet, done);
    };
    // Registered before listen() adds aedes' own listener, which closes a local session whose
    // client id connected to another replica: this one marks it a takeover first.
    internals.mq.on(NEW_CLIENTS_TOPIC, (packet, done) => {
      this.onConnectedElsewhere(packet);
      done();
    });
    // aedes reports storage failures (Redis away) as 'error' events; unheard they would throw.
    (aedes as EventEmitter).on('error', (err: Error) => this.log.warn({ err }, 'broker error'));
    await internals.listen();
    this.aedes = aedes;
    // aedes gives an empty client id a generated one; remember it was empty to refuse it.
    aedes.preConnect = (client, packet, done) => {
      if (!packet.clientId) emptyClientIds.add(client);
      done(null, true);
    };
    aedes.authenticate = (client, username, password, done) => {
      this.authenticate(client, username, password).then(
        () => done(null, true),
        (err: unknown) => done(this.refusal(client, err), false),
      );
    };
    aedes.authorizePublish = (client, packet, done) => {
      this.authorizePublish(client, packet).then(
        () => done(null),
        (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
      );
    };
    aedes.authorizeSubscribe = (client, sub, done) =>
      done(null, this.authorizeSubscribe(client, sub));
    aedes.authorizeForward = (client, packet) => this.authorizeForward(client, packet);
    aedes.on('client', (client) => this.onClient(client));
    aedes.on('clientDisconnect', (client) => this.onClientGone(client));
    aedes.on('subscribe', (subscriptions, client) => this.onSubscribed(subscriptions, client));
    aedes.on('keepaliveTimeout', (client) => {
      const session = this.sessions.get(client);
      if (session) session.closeReason ??= 'keepalive_timeout';
    });
    aedes.on('clientError', (client, err) => {
      const session = this.sessions.get(client);
      if (session) session.closeReason ??= 'error';
      this.log.debug({ deviceId: client.id, err: err.message }, 'client error');
    });

    const onRevoked = ({ deviceId }: { deviceId: string }) => this.disconnect(deviceId, 'revoked');
    this.events.on('device.revoked', onRevoked);
    this.listeners.push(() => this.events.off('device.revoked', onRevoked));

    if (this.config.mqtt.port > 0) {
      this.tcp = createTcpServer((socket) => this.handle(socket));
      this.ports.mqtt = await listen(this.tcp, this.config.mqtt.port, this.config.http.host);
    }
    if (this.config.mqtt.tlsPort > 0) {
      const creds = await loadTlsCredentials(this.config, this.log);
      this.tls = createTlsServer(
        { key: creds.key, cert: creds.cert, minVersion: 'TLSv1.2' },
        (socket) => this.handle(socket),
      );
      this.ports.mqtts = await listen(this.tls, this.config.mqtt.tlsPort, this.config.http.host);
    }
    // MQTT over WebSocket on the HTTP port, path /mqtt (PROTOCOL.md §3).
    this.ws = new WebSocketServer({
      noServer: true,
      maxPayload: this.config.limits.maxMessageBytes + 1024,
    });
    this.httpServer = this.adapterHost.httpAdapter?.getHttpServer() as HttpServer | undefined;
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (req.url?.split('?')[0] !== '/mqtt') return;
      this.ws!.handleUpgrade(req, socket, head, (ws) => {
        const stream = createWebSocketStream(ws) as Duplex & { remoteAddress?: string };
        stream.remoteAddress = req.socket.remoteAddress;
        this.handle(stream);
      });
    };
    this.httpServer?.on('upgrade', onUpgrade);
    this.listeners.push(() => this.httpServer?.off('upgrade', onUpgrade));

    this.flushTimer = setInterval(() => void this.flush(), this.config.mqtt.connectivityFlushMs);
    this.flushTimer.unref();
    this.log.info(
      { mqtt: this.ports.mqtt || 'off', mqtts: this.ports.mqtts || 'off', websocket: '/mqtt' },
      'broker listening',
    );
  }

  /** Before storage closes: stop accepting, close sessions, record who went offline. */
  async beforeApplicationShutdown(): Promise<void> {
    for (const off of this.listeners.splice(0)) off();
    if (this.flushTimer) clearInterval(this.flushTimer);
    await Promise.all([closeServer(this.tcp), closeServer(this.tls)]);
    this.ws?.close();
    for (const client of [...this.sessions.keys()]) {
      const session = this.sessions.get(client);
      if (session) session.closeReason ??= 'shutdown';
    }
    await new Promise<void>((resolve) => {
      if (!this.aedes) return resolve();
      const reachable = this.aedesRedis?.reachable() ?? true;
      const timer = setTimeout(resolve, reachable ? CLOSE_TIMEOUT_MS : CLOSE_TIMEOUT_REDIS_DOWN_MS);
      this.aedes.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    // aedes.close() leaves the Redis persistence open: released here, or the process hangs.
    await this.aedesRedis?.close();
    for (const timer of this.expiry.values()) clearTimeout(timer);
    this.expiry.clear();
    await this.flush();
  }

  /** Publishes a command to a device, signed by the service key (PROTOCOL.md §8). */
  async publishCommand(deviceId: string, body: CommandBody): Promise<string> {
    const now = Math.floor(this.clock.now() / 1000);
    const command = { v: 1, id: randomUUID(), exp: now + COMMAND_TTL_S, ...body, device: deviceId };
    const jws = await signCommand(this.keys.signingKey, command);
    await new Promise<void>((resolve, reject) =>
      this.aedes!.publish(
        {
          cmd: 'publish',
          topic: topics.commands(deviceId),
          payload: Buffer.from(jws),
          qos: 1,
          retain: false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    return command.id;
  }

  /** Device events (§7), for OTA and alerts. */
  onDeviceEvent(handler: (m: DeviceEventMessage) => void): () => void {
    this.eventHandlers.add(handler);
    return () => this.eventHandlers.delete(handler);
  }

  /**
   * A device (or a gateway, for a child) listens on a commands topic from now on: the moment
   * to send what it missed while away (OTA offers, release keys).
   */
  onCommandsSubscribed(handler: (s: CommandsSubscription) => void): () => void {
    this.subscribeHandlers.add(handler);
    return () => this.subscribeHandlers.delete(handler);
  }

  isOnline(deviceId: string): boolean {
    return this.connectivity.isOnline(deviceId);
  }

  /** Devices with a session on this replica now. */
  connectedDevices(): string[] {
    return [...new Set([...this.sessions.values()].map((s) => s.deviceId))];
  }

  /** Closes a device's session (revocation, expiry, refusals); takes effect at once. */
  disconnect(deviceId: string, reason: string): void {
    const client = this.clientById(deviceId);
    if (!client) return;
    const session = this.sessions.get(client);
    if (session) session.closeReason = reason;
    client.close();
  }

  /** aedes keeps connected clients by id; its typings do not declare the map. */
  private clientById(id: string): Client | undefined {
    return (this.aedes as unknown as { clients?: Record<string, Client> } | undefined)?.clients?.[
      id
    ];
  }

  private handle(transport: Duplex & { remoteAddress?: string | undefined }): void {
    const guarded = new GuardedConnection(
      transport,
      {
        maxPacketBytes: this.config.limits.maxMessageBytes + 1024,
        maxConnectBytes: MAX_CONNECT_BYTES,
      },
      (reason) => {
        this.refusedMessages.inc({ reason: 'packet_too_large' });
        this.telemetry.countRejected('too_large');
        this.log.debug(
          { reason, remote: transport.remoteAddress },
          'connection refused by frame guard',
        );
      },
    );
    guarded.on('error', () => {});
    this.aedes!.handle(guarded);
  }

  private async authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ) {
    const now = this.clock.now();
    const id = emptyClientIds.has(client) ? '' : (client.id ?? '');
    const cooldown = this.cooldownUntil.get(id);
    if (cooldown !== undefined && cooldown > now) {
      throw new ConnectionRefused(
        CONNACK.serverUnavailable,
        'takeover_loop',
        'client id is taking itself over; wait',
      );
    }
    const session = await authenticateDevice(
      this.store,
      { clientId: id, username, password },
      {
        audience: this.config.audience,
        maxLifetimeS: this.config.limits.deviceJwtMaxLifetimeS,
        now,
      },
    );
    // A will message must be one the device could publish itself.
    const will = (client as unknown as { _will?: { topic?: string } | null })._will;
    if (will?.topic !== undefined && !mayPublish(actorOf(session), will.topic).ok) {
      throw new ConnectionRefused(
        CONNACK.notAuthorized,
        'will_not_allowed',
        'will topic not allowed',
      );
    }
    const previous = this.clientById(id);
    if (previous) {
      // [MQTT-3.1.4-2] the new connection takes over; two clients with one id must not loop.
      if (this.takeovers.add(id, now) > this.config.mqtt.maxTakeoversPerMinute) {
        this.cooldownUntil.set(id, now + TAKEOVER_COOLDOWN_MS);
        throw new ConnectionRefused(
          CONNACK.serverUnavailable,
          'takeover_loop',
          'client id is taking itself over; wait',
        );
      }
      const old = this.sessions.get(previous);
      if (old) old.closeReason = 'takeover';
    }
    this.sessions.set(client, session);
  }

  private refusal(client: Client, err: unknown): AuthenticateError {
    const refused =
      err instanceof ConnectionRefused
        ? err
        : new ConnectionRefused(CONNACK.serverUnavailable, 'internal', 'authentication failed');
    if (!(err instanceof ConnectionRefused))
      this.log.error({ err, deviceId: client.id }, 'authentication error');
    this.refusedConnections.inc({ reason: refused.code });
    this.log.debug({ deviceId: client.id, reason: refused.code }, 'connection refused');
    return Object.assign(new Error(refused.message), {
      returnCode: refused.returnCode,
    }) as AuthenticateError;
  }

  private onClient(client: Client): void {
    const session = this.sessions.get(client);
    if (!session) return;
    const now = this.clock.now();
    this.connectivity.connected(session.deviceId, now);
    this.live.emit('status', { deviceId: session.deviceId, online: true, reason: null, at: now });
    // PROTOCOL.md §3: the session ends when its token expires; the client reconnects.
    const timer = setTimeout(
      () => this.disconnect(session.deviceId, 'token_expired'),
      Math.max(0, session.expiresAt - now),
    );
    timer.unref();
    this.expiry.set(client, timer);
  }

  /**
   * A client registered on some replica. When it is one of ours connected elsewhere (the
   * device moved), our session ends as a takeover, and an offline state not yet written
   * must not overwrite the online one the other replica writes.
   */
  private onConnectedElsewhere(packet: PublishPacket): void {
    const brokerId = packet.topic.split('/')[1];
    if (!this.aedes || brokerId === this.aedes.id) return;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    if (payload.length > 256) return;
    const deviceId = payload.toString('utf8');
    const now = this.clock.now();
    const local = this.clientById(deviceId);
    const session = local ? this.sessions.get(local) : undefined;
    if (session) {
      session.closeReason = 'takeover';
      // Two clients with one id on two replicas must not loop either.
      if (this.takeovers.add(deviceId, now) > this.config.mqtt.maxTakeoversPerMinute) {
        this.cooldownUntil.set(deviceId, now + TAKEOVER_COOLDOWN_MS);
      }
    }
    this.connectivity.movedAway(deviceId, now);
  }

  private onClientGone(client: Client): void {
    const session = this.sessions.get(client);
    if (!session) return;
    this.sessions.delete(client);
    const timer = this.expiry.get(client);
    if (timer) clearTimeout(timer);
    this.expiry.delete(client);
    const graceful = (client as unknown as { _disconnected?: boolean })._disconnected === true;
    const reason = session.closeReason ?? (graceful ? 'client_disconnect' : 'connection_lost');
    // A takeover replaces the session: the device is still online through the new one.
    if (reason !== 'takeover') {
      const now = this.clock.now();
      this.connectivity.disconnected(session.deviceId, reason, now);
      this.live.emit('status', { deviceId: session.deviceId, online: false, reason, at: now });
    }
  }

  private async authorizePublish(client: Client | null, packet: PublishPacket): Promise<void> {
    // Obsolete wills of clients no longer connected are dropped.
    if (!client) throw new Error('no client');
    const session = this.sessions.get(client);
    if (!session) throw new Error('not authenticated');
    const now = this.clock.now();
    this.connectivity.seen(session.deviceId, now);
    if (!isValidTopicString(packet.topic)) {
      this.refuseMessage(session, 'bad_topic', now);
      throw new Error('bad topic');
    }
    const acl = mayPublish(actorOf(session), packet.topic);
    if (!acl.ok) {
      // Publishing where one may not is never acknowledged: the connection is closed.
      this.refuseMessage(session, acl.reason, now);
      session.closeReason = `acl_${acl.reason}`;
      throw new Error(`publish refused: ${acl.reason}`);
    }
    const topic = parseTopic(packet.topic)!;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    switch (topic.channel) {
      case 'telemetry':
        packet.retain = false;
        return this.acceptTelemetry(session, payload, now);
      case 'state':
        return this.acceptState(session, topic.deviceId, packet, payload, now);
      case 'events':
        packet.retain = false;
        return this.acceptEvent(session, topic.deviceId, payload, now);
      default:
        throw new Error('publish refused');
    }
  }

  private async acceptTelemetry(
    session: DeviceSession,
    payload: Buffer,
    now: number,
  ): Promise<void> {
    try {
      await this.telemetry.accept(session, payload);
    } catch (err) {
      if (!(err instanceof TelemetryRejected)) {
        // Not accepted and not refused for good (e.g. the outbox is full): no PUBACK, so the
        // device keeps the batch and sends it again after reconnecting.
        if (!isAppError(err) || err.kind !== 'unavailable')
          this.log.error({ err, deviceId: session.deviceId }, 'telemetry failed');
        session.closeReason = isAppError(err) ? err.code : 'internal';
        throw err;
      }
      // PROTOCOL.md §9: acknowledged, reported on the commands topic, counted.
      this.log.debug(
        { deviceId: session.deviceId, reason: err.reason, ...err.batch },
        'telemetry refused',
      );
      this.refusedMessages.inc({ reason: `telemetry_${err.reason}` });
      if (err.batch.boot && err.batch.seq) {
        this.publishCommand(session.deviceId, {
          type: 'telemetry.rejected',
          boot: err.batch.boot,
          seq: err.batch.seq,
          reason: err.reason,
          detail: err.message.slice(0, 500),
        }).catch((e: unknown) =>
          this.log.warn(
            { err: e, deviceId: session.deviceId },
            'could not send telemetry.rejected',
          ),
        );
      }
      if (this.refusals.add(session.deviceId, now) > this.config.mqtt.maxRefusalsPerMinute) {
        session.closeReason = 'too_many_refusals';
        setImmediate(() => this.disconnect(session.deviceId, 'too_many_refusals'));
      }
    }
  }

  private async acceptState(
    session: DeviceSession,
    deviceId: string,
    packet: PublishPacket,
    payload: Buffer,
    now: number,
  ): Promise<void> {
    const state = parseJson(payload);
    const parsed = state === undefined ? undefined : reportedStateSchema.safeParse(state);
    if (!parsed?.success) {
      // Not kept: neither retained nor recorded.
      packet.retain = false;
      this.refuseMessage(session, 'bad_state', now);
      return;
    }
    packet.retain = true;
    this.pendingStates.set(deviceId, {
      state: parsed.data,
      pending: parsed.data.outbox?.pending ?? 0,
      at: now,
    });
  }

  private async acceptEvent(
    session: DeviceSession,
    deviceId: string,
    payload: Buffer,
    now: number,
  ): Promise<void> {
    const parsed = deviceEventSchema.safeParse(parseJson(payload));
    if (!parsed.success) {
      this.refuseMessage(session, 'bad_event', now);
      return;
    }
    for (const handler of this.eventHandlers) {
      try {
        handler({ deviceId, event: parsed.data });
      } catch (err) {
        this.log.error({ err, deviceId }, 'event handler failed');
      }
    }
  }

  private onSubscribed(subscriptions: Subscription[], client: Client): void {
    const session = this.sessions.get(client);
    if (!session) return;
    for (const sub of subscriptions) {
      // Granted QoS 128 marks a refused filter [MQTT-3.9.3-2].
      if ((sub.qos as number) === 128) continue;
      const topic = parseTopic(sub.topic);
      if (topic?.channel !== 'commands') continue;
      for (const handler of this.subscribeHandlers) {
        try {
          handler({ deviceId: topic.deviceId, subscriber: session.deviceId });
        } catch (err) {
          this.log.error({ err, deviceId: topic.deviceId }, 'subscribe handler failed');
        }
      }
    }
  }

  private authorizeSubscribe(client: Client, sub: Subscription): Subscription | null {
    const session = this.sessions.get(client);
    if (!session) return null;
    const decision = maySubscribe(actorOf(session), sub.topic);
    if (decision.ok) return sub;
    // SUBACK 0x80 for this filter [MQTT-3.9.3-2]; counted like any refusal.
    this.refuseMessage(session, `subscribe_${decision.reason}`, this.clock.now());
    return null;
  }

  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    // Defence in depth: only a device's own (or its children's) commands reach it.
    const session = this.sessions.get(client);
    const topic = parseTopic(packet.topic);
    if (!session || !topic || topic.channel !== 'commands') return null;
    return topic.deviceId === session.deviceId || session.children.has(topic.deviceId)
      ? packet
      : null;
  }

  private refuseMessage(session: DeviceSession, reason: string, now: number): void {
    this.refusedMessages.inc({ reason });
    if (this.refusals.add(session.deviceId, now) > this.config.mqtt.maxRefusalsPerMinute) {
      session.closeReason = 'too_many_refusals';
      setImmediate(() => this.disconnect(session.deviceId, 'too_many_refusals'));
    }
  }

  private async flush(): Promise<void> {
    const updates = this.connectivity.take();
    const states = [...this.pendingStates.entries()];
    this.pendingStates.clear();
    try {
      if (updates.length > 0) await this.store.recordConnectivity(updates);
      for (const [deviceId, s] of states)
        await this.store.recordReportedState(deviceId, s.state, s.pending, s.at);
    } catch (err) {
      this.log.warn({ err }, 'could not record connectivity; will retry');
      // Put them back unless newer ones arrived meanwhile.
      for (const u of updates) {
        if (u.online) this.connectivity.connected(u.deviceId, u.lastSeen);
        else
          this.connectivity.disconnected(u.deviceId, u.disconnectReason ?? 'unknown', u.lastSeen);
      }
      for (const [deviceId, s] of states)
        if (!this.pendingStates.has(deviceId)) this.pendingStates.set(deviceId, s);
    }
  }
}

/** Clients whose CONNECT carried an empty client id ([MQTT-3.1.3-6]); refused with code 2. */
const emptyClientIds = new WeakSet<Client>();

function actorOf(session: DeviceSession) {
  return { deviceId: session.deviceId, kind: session.kind, children: session.children };
}

function parseJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}

function listen(server: TcpServer | TlsServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
}

function closeServer(server: TcpServer | TlsServer | undefined): Promise<void> {
  return new Promise((resolve) => (server?.listening ? server.close(() => resolve()) : resolve()));
}
