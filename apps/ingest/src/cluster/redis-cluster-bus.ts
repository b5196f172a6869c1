import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Clock } from '../injection.js';
import type { ClusterBus } from './cluster-bus.js';
import {
  type ClusterEnvelope,
  type ClusterEvent,
  decodeEnvelope,
  encodeEnvelope,
  isLiveEvent,
  LIVE_TYPES,
  type LiveType,
  MAX_CLUSTER_MESSAGE_BYTES,
  RecentIds,
} from './cluster-messages.js';
import { closeRedis, openRedis } from './redis-connection.js';

const REGISTRY_CHANNEL = 'outpost:cluster:registry';
const liveChannel = (type: LiveType) => `outpost:cluster:live:${type}`;
/** How often the replicas' interest in live events is read (PUBSUB NUMSUB). */
const INTEREST_POLL_MS = 250;
/** Bad messages are logged at most this often (each is counted). */
const BAD_MESSAGE_LOG_MS = 60_000;

/**
 * The cluster bus over Redis pub/sub (ioredis): one channel for registry events, every
 * replica subscribed; one channel per live-event type, subscribed only by replicas that have
 * SSE clients for it, so readings cross Redis only when someone watches them.
 */
export class RedisClusterBus implements ClusterBus {
  readonly clustered = true;
  private pub: Redis | undefined;
  private sub: Redis | undefined;
  /**
   * Starts at the start time in microseconds, so a replica restarted under the same id does
   * not reuse numbers the others still remember as seen.
   */
  private seq: number;
  private readonly recent = new RecentIds();
  private readonly handlers = new Set<(envelope: ClusterEnvelope) => void>();
  private readonly reconnectHandlers = new Set<(lostAt: number) => void>();
  /** When the subscriber connection was lost; undefined while it is up. */
  private lostAt: number | undefined;
  private readonly wanted = new Set<LiveType>();
  private othersWanting = new Set<LiveType>();
  private interestTimer: NodeJS.Timeout | undefined;
  private lastBadLog = Number.NEGATIVE_INFINITY;
  private readonly log: Logger;
  private readonly messages: Counter<'direction' | 'result'>;

  constructor(
    private readonly url: string,
    readonly replicaId: string,
    private readonly clock: Clock,
    logger: Logger,
    metrics: Registry,
  ) {
    this.log = logger.child({ module: 'cluster-bus' });
    this.seq = clock.now() * 1000;
    this.messages = new Counter({
      name: 'outpost_ingest_cluster_messages_total',
      help: 'Cluster bus messages sent and received, by result (ok, or why dropped)',
      labelNames: ['direction', 'result'],
      registers: [metrics],
    });
    const healthy = () => this.healthy();
    new Gauge({
      name: 'outpost_ingest_cluster_redis_up',
      help: '1 when the cluster bus reaches Redis',
      registers: [metrics],
      collect() {
        this.set(healthy() ? 1 : 0);
      },
    });
  }

  async start(): Promise<void> {
    this.pub = openRedis(this.url, 'bus-pub', this.log);
    this.sub = openRedis(this.url, 'bus-sub', this.log);
    this.sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => this.receive(message));
    this.sub.on('close', () => {
      this.lostAt ??= this.clock.now();
    });
    this.sub.on('ready', () => this.reconnected());
    await this.sub.subscribe(REGISTRY_CHANNEL);
    this.interestTimer = setInterval(() => void this.pollInterest(), INTEREST_POLL_MS);
    this.interestTimer.unref();
    this.log.info({ replicaId: this.replicaId }, 'cluster bus on redis');
  }

  async close(): Promise<void> {
    if (this.interestTimer) clearInterval(this.interestTimer);
    this.handlers.clear();
    this.reconnectHandlers.clear();
    await Promise.all([this.sub && closeRedis(this.sub), this.pub && closeRedis(this.pub)]);
  }

  publish(event: ClusterEvent): void {
    const pub = this.pub;
    if (!pub) return;
    // A live event is worth nothing later: dropped while Redis is away. A registry event
    // waits in ioredis' queue for a short reconnect (the registry holds the truth anyway).
    if (isLiveEvent(event) && pub.status !== 'ready') {
      this.messages.inc({ direction: 'sent', result: 'redis_down' });
      return;
    }
    const raw = encodeEnvelope({ v: 1, origin: this.replicaId, seq: this.seq++, event });
    if (raw.length > MAX_CLUSTER_MESSAGE_BYTES) {
      this.messages.inc({ direction: 'sent', result: 'too_large' });
      this.log.warn({ type: event.type, bytes: raw.length }, 'cluster message too large; dropped');
      return;
    }
    const channel = isLiveEvent(event) ? liveChannel(event.type) : REGISTRY_CHANNEL;
    pub.publish(channel, raw).then(
      () => this.messages.inc({ direction: 'sent', result: 'ok' }),
      (err: unknown) => {
        this.messages.inc({ direction: 'sent', result: 'failed' });
        this.log.warn(
          { err: { message: (err as Error).message }, type: event.type },
          'cluster message not sent',
        );
      },
    );
  }

  onReconnected(handler: (lostAt: number) => void): () => void {
    this.reconnectHandlers.add(handler);
    return () => this.reconnectHandlers.delete(handler);
  }

  onMessage(handler: (envelope: ClusterEnvelope) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  wantLive(type: LiveType, wanted: boolean): void {
    if (wanted === this.wanted.has(type) || !this.sub) return;
    const onError = (err: Error) =>
      this.log.warn({ err: { message: err.message }, type }, 'live channel (un)subscribe failed');
    if (wanted) {
      this.wanted.add(type);
      this.sub.subscribe(liveChannel(type)).catch(onError);
    } else {
      this.wanted.delete(type);
      this.sub.unsubscribe(liveChannel(type)).catch(onError);
    }
  }

  othersWantLive(type: LiveType): boolean {
    return this.othersWanting.has(type);
  }

  healthy(): boolean {
    return this.pub?.status === 'ready' && this.sub?.status === 'ready';
  }

  private reconnected(): void {
    const lostAt = this.lostAt;
    this.lostAt = undefined;
    if (lostAt === undefined) return;
    for (const handler of this.reconnectHandlers) {
      try {
        handler(lostAt);
      } catch (err) {
        this.log.error({ err }, 'cluster reconnect handler failed');
      }
    }
  }

  private receive(raw: Buffer): void {
    const decoded = decodeEnvelope(raw);
    if (!decoded.ok) {
      this.messages.inc({ direction: 'received', result: decoded.reason });
      const now = this.clock.now();
      if (now - this.lastBadLog >= BAD_MESSAGE_LOG_MS) {
        this.lastBadLog = now;
        this.log.warn({ reason: decoded.reason, bytes: raw.length }, 'bad cluster message dropped');
      }
      return;
    }
    const { envelope } = decoded;
    if (envelope.origin === this.replicaId) return;
    if (!this.recent.add(envelope.origin, envelope.seq)) {
      this.messages.inc({ direction: 'received', result: 'duplicate' });
      return;
    }
    this.messages.inc({ direction: 'received', result: 'ok' });
    for (const handler of this.handlers) {
      try {
        handler(envelope);
      } catch (err) {
        this.log.error({ err, type: envelope.event.type }, 'cluster message handler failed');
      }
    }
  }

  /** Which live channels other replicas listen on: subscribers, less this replica. */
  private async pollInterest(): Promise<void> {
    const pub = this.pub;
    if (pub?.status !== 'ready') return;
    try {
      const reply = (await pub.pubsub('NUMSUB', ...LIVE_TYPES.map(liveChannel))) as (
        | string
        | number
      )[];
      const others = new Set<LiveType>();
      LIVE_TYPES.forEach((type, i) => {
        const count = Number(reply[i * 2 + 1] ?? 0) - (this.wanted.has(type) ? 1 : 0);
        if (count > 0) others.add(type);
      });
      this.othersWanting = others;
    } catch {
      // Redis went away between the status check and the reply: keep the last answer.
    }
  }
}
