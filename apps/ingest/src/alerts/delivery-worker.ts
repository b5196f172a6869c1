import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { IngestConfig } from '../config.js';
import { CLOCK, type Clock, CONFIG, LOGGER, METRICS, RANDOM, type Random } from '../injection.js';
import { ALERT_STORE, type AlertStore, type DeliveryRecord } from './alert-store.js';
import type { AlertMessage } from './notification.js';
import { WebhookNotifier } from './notifiers/webhook-notifier.js';
import { type RetryPolicy, retryDelay } from './retry-schedule.js';

const PRUNE_EVERY_MS = 3_600_000;

/**
 * Sends the durable webhook queue: claims due deliveries (leased, so a crashed sender's
 * work returns and several replicas never send one delivery twice), posts each through the
 * WebhookNotifier, and records delivered, retry-at (backoff with jitter) or dead letter.
 * Runs beside ingest with bounded concurrency: a slow or failing receiver holds only its own
 * slots, never the ingest path or the alert engine.
 */
@Injectable()
export class DeliveryWorker {
  private readonly log: Logger;
  private readonly policy: RetryPolicy;
  private readonly leaseMs: number;
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private again = false;
  private stopped = true;
  private lastPrune = 0;
  private readonly outcomes: Counter<'outcome'>;

  constructor(
    @Inject(ALERT_STORE) private readonly store: AlertStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(RANDOM) private readonly random: Random,
    @Inject(LOGGER) logger: Logger,
    @Inject(METRICS) metrics: Registry,
    private readonly webhook: WebhookNotifier,
  ) {
    this.log = logger.child({ module: 'alert-webhooks' });
    const w = config.alerts.webhook;
    this.policy = { baseMs: w.backoffMs, maxMs: w.maxBackoffMs, maxAttempts: w.maxAttempts };
    // Longer than any attempt can take, so a lease never ends under a live attempt.
    this.leaseMs = w.timeoutMs * 2 + 5000;
    this.outcomes = new Counter({
      name: 'outpost_ingest_alert_webhook_attempts_total',
      help: 'Webhook notification attempts by outcome (delivered, retry, dead)',
      labelNames: ['outcome'],
      registers: [metrics],
    });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => this.wake(), this.config.alerts.tickMs);
    this.timer.unref();
    this.wake();
  }

  /** New work may be due: look now rather than at the next tick. */
  wake(): void {
    if (this.stopped) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = true;
    setImmediate(() => {
      this.poll()
        .catch((err: unknown) => this.log.error({ err }, 'webhook queue poll failed'))
        .finally(() => {
          this.polling = false;
          if (this.again) {
            this.again = false;
            this.wake();
          }
        });
    });
  }

  /** Stops claiming; waits for attempts in flight (each bounded by its timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }

  private async poll(): Promise<void> {
    const now = this.clock.now();
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await this.store.pruneDeliveries(now - this.config.alerts.webhook.retentionMs);
    }
    for (;;) {
      const free = this.config.alerts.webhook.concurrency - this.inFlight.size;
      if (this.stopped || free <= 0) return;
      const claimed = await this.store.claimDeliveries(this.clock.now(), free, this.leaseMs);
      if (claimed.length === 0) return;
      for (const d of claimed) {
        const attempt: Promise<void> = this.deliver(d)
          .catch((err: unknown) =>
            this.log.error({ err, deliveryId: d.id }, 'webhook delivery bookkeeping failed'),
          )
          .finally(() => {
            this.inFlight.delete(attempt);
            this.wake();
          });
        this.inFlight.add(attempt);
      }
    }
  }

  private async deliver(d: DeliveryRecord): Promise<void> {
    const secret = await this.store.ruleSecret(d.ruleId);
    const result = secret
      ? await this.webhook.send({
          message: JSON.parse(d.body) as AlertMessage,
          body: d.body,
          target: { url: d.url, secret },
          deliveryId: d.id,
          attempt: d.attempts,
        })
      : ({
          ok: false,
          retryable: false,
          error: 'the rule no longer exists',
          status: null,
        } as const);
    const now = this.clock.now();
    if (result.ok) {
      this.outcomes.inc({ outcome: 'delivered' });
      await this.store.deliverySucceeded(d.id, d.attempts, now, result.status ?? 0);
      return;
    }
    const delay = result.retryable
      ? retryDelay(this.policy, d.attempts, this.random.unit(), result.retryAfterMs)
      : null;
    await this.store.deliveryFailed(d.id, d.attempts, {
      at: now,
      error: result.error,
      status: result.status,
      retryAt: delay === null ? null : now + delay,
    });
    const fields = {
      deliveryId: d.id,
      alertId: d.alertId,
      ruleId: d.ruleId,
      host: hostOf(d.url),
      attempt: d.attempts,
      error: result.error,
    };
    if (delay === null) {
      this.outcomes.inc({ outcome: 'dead' });
      this.log.warn(fields, 'webhook notification dead-lettered');
    } else {
      this.outcomes.inc({ outcome: 'retry' });
      this.log.debug({ ...fields, retryInMs: delay }, 'webhook notification will be retried');
    }
  }
}

/** Only the host is logged: webhook paths often carry tokens. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '?';
  }
}
