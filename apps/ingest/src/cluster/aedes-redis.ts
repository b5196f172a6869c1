import type { EventEmitter } from 'node:events';
import createPersistence from 'aedes-persistence-redis';
import MQEmitterRedis from 'mqemitter-redis';
import type { Logger } from 'pino';
import { closeRedis, openRedis } from './redis-connection.js';

/** Offline messages handed to a session on CONNECT; commands are few per device. */
const MAX_SESSION_DELIVERY = 1000;

/**
 * aedes' own cluster parts: `aedes-persistence-redis` keeps sessions, subscriptions and QoS 1
 * in-flight and offline messages in Redis, so a device that moves to another replica finds
 * them there; `mqemitter-redis` carries every publish to every replica, so a command
 * published on one reaches a device connected to another.
 */
export interface AedesRedis {
  persistence: ReturnType<typeof createPersistence>;
  mq: ReturnType<typeof MQEmitterRedis>;
  /** Whether every connection reaches Redis now (closing need not wait when not). */
  reachable(): boolean;
  /** After `aedes.close()`: releases the persistence and every connection. */
  close(): Promise<void>;
}

export function openAedesRedis(url: string, logger: Logger): AedesRedis {
  const db = openRedis(url, 'persistence', logger);
  const pubConn = openRedis(url, 'mq-pub', logger);
  const subConn = openRedis(url, 'mq-sub', logger);
  const persistence = createPersistence({ conn: db, maxSessionDelivery: MAX_SESSION_DELIVERY });
  const mq = MQEmitterRedis({ pubConn, subConn });
  // Connection errors are logged by openRedis; an 'error' event nobody listens to would throw.
  (mq as unknown as { state: EventEmitter }).state.on('error', () => {});
  const reachable = () => [db, pubConn, subConn].every((c) => c.status === 'ready');
  return {
    persistence,
    mq,
    reachable,
    async close() {
      // aedes.close() already closed the emitter; destroy() is what releases the persistence
      // (aedes does not), bounded so a Redis outage cannot hold the shutdown.
      await Promise.race([
        persistence.destroy().catch(() => undefined),
        new Promise((r) => setTimeout(r, reachable() ? 2000 : 200).unref()),
      ]);
      await Promise.all([closeRedis(db), closeRedis(pubConn), closeRedis(subConn)]);
    },
  };
}
