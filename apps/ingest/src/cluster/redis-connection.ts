import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** Reconnect delays grow by this much per attempt, up to the cap: Redis back ⇒ back within 2 s. */
const RECONNECT_STEP_MS = 100;
const RECONNECT_MAX_MS = 2000;
/**
 * Commands sent while Redis is unreachable wait in ioredis' queue for this many reconnect
 * attempts (about 0.6 s) and then fail, so callers (a device's CONNECT, a publish) see an
 * error instead of hanging until Redis is back.
 */
const MAX_RETRIES_PER_REQUEST = 3;

/**
 * One ioredis connection for one role (`bus-pub`, `mq-sub`, …). ioredis reconnects by
 * itself and, on a subscriber connection, subscribes again to what it had. Errors are logged
 * once per outage, with the role and never the URL (it may carry the password).
 */
export function openRedis(url: string, role: string, logger: Logger): Redis {
  const log = logger.child({ redis: role });
  const redis = new Redis(url, {
    connectionName: `outpost-${role}`,
    maxRetriesPerRequest: MAX_RETRIES_PER_REQUEST,
    retryStrategy: (attempt) => Math.min(RECONNECT_STEP_MS * attempt, RECONNECT_MAX_MS),
  });
  let down = false;
  redis.on('error', (err: Error & { code?: string }) => {
    if (down) return;
    down = true;
    log.warn({ err: { message: err.message, code: err.code } }, 'redis unreachable; reconnecting');
  });
  redis.on('ready', () => {
    if (down) log.info('redis reachable again');
    down = false;
  });
  return redis;
}

/** Closes a connection: QUIT when connected, else (or if QUIT hangs) a hard disconnect. */
export async function closeRedis(redis: Redis, timeoutMs = 2000): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status === 'ready') {
    const quit = redis.quit().then(
      () => true,
      () => false,
    );
    const timedOut = new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref());
    if (await Promise.race([quit, timedOut])) return;
  }
  redis.disconnect();
}
