import { Inject, Injectable } from '@nestjs/common';
import type { IngestConfig } from '../../config.js';
import { CLOCK, type Clock, CONFIG } from '../../injection.js';
import type { Notifier, Outgoing, SendResult } from './notifier.js';
import {
  DELIVERY_HEADER,
  EVENT_HEADER,
  SIGNATURE_HEADER,
  signWebhook,
  TIMESTAMP_HEADER,
} from './webhook-signature.js';

/** Answers worth retrying; other 4xx mean the request itself is refused. */
const RETRYABLE = new Set([408, 425, 429]);

/**
 * One signed HTTP POST per attempt: JSON body, `x-outpost-timestamp`, `x-outpost-signature`
 * (webhook-signature.ts), `x-outpost-delivery` (stable across retries, for deduplication).
 * Redirects are not followed; the timeout bounds every attempt. Retries and dead letters
 * are the delivery worker's.
 */
@Injectable()
export class WebhookNotifier implements Notifier {
  readonly channel = 'webhook' as const;

  constructor(
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  async send(outgoing: Outgoing): Promise<SendResult> {
    const target = outgoing.target;
    if (!target) return { ok: false, retryable: false, error: 'no webhook target', status: null };
    if (!/^https?:\/\//i.test(target.url)) {
      return { ok: false, retryable: false, error: 'only http(s) URLs', status: null };
    }
    const timestamp = Math.floor(this.clock.now() / 1000);
    let response: Response;
    try {
      response = await fetch(target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'outpost-ingest-webhook/1',
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: signWebhook(target.secret, timestamp, outgoing.body),
          [DELIVERY_HEADER]: outgoing.deliveryId,
          [EVENT_HEADER]: outgoing.message.type,
        },
        body: outgoing.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.config.alerts.webhook.timeoutMs),
      });
      // The answer's body is not used; reading it frees the connection.
      await response.arrayBuffer().catch(() => undefined);
    } catch (err) {
      return { ok: false, retryable: true, error: describe(err, this.config), status: null };
    }
    const status = response.status;
    if (status >= 200 && status < 300) return { ok: true, status };
    const retryable = status >= 500 || RETRYABLE.has(status);
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.clock.now());
    return {
      ok: false,
      retryable,
      error:
        status >= 300 && status < 400
          ? `HTTP ${status}: redirects are not followed; give the final URL`
          : `HTTP ${status}`,
      status,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
}

function describe(err: unknown, config: IngestConfig): string {
  const name = (err as { name?: unknown })?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return `no answer within ${config.alerts.webhook.timeoutMs} ms`;
  }
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return `${code}${messageOf(current)}`;
    current = (current as { cause?: unknown }).cause;
  }
  return err instanceof Error ? err.message : String(err);
}

function messageOf(err: unknown): string {
  const m = (err as { message?: unknown }).message;
  return typeof m === 'string' && m ? `: ${m.slice(0, 200)}` : '';
}

/** RFC 9110 §10.2.3: seconds or an HTTP date. */
function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
