import type { AlertMessage } from '../notification.js';

/**
 * A channel alert notifications go out on. Implementations: webhook (HTTP, signed; retried
 * from the durable queue), stream (the SSE `alerts` event) and log. Contract suite:
 * `notifier.contract.ts`.
 */
export interface Notifier {
  readonly channel: 'webhook' | 'stream' | 'log';
  /** One attempt. Never rejects: a failure is returned, for the caller to retry or not. */
  send(outgoing: Outgoing): Promise<SendResult>;
}

export interface Outgoing {
  message: AlertMessage;
  /** `message` as JSON, byte for byte what is signed and sent. */
  body: string;
  /** Where a webhook goes and the rule's signing secret. */
  target?: { url: string; secret: string };
  /** Stable across attempts: receivers deduplicate on it. */
  deliveryId: string;
  attempt: number;
}

export type SendResult =
  | { ok: true; status: number | null }
  | {
      ok: false;
      /** Worth trying again (network, timeout, 408, 425, 429, 5xx). */
      retryable: boolean;
      error: string;
      status: number | null;
      retryAfterMs?: number;
    };
