import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures: `x-outpost-signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
 * with the rule's secret, and `x-outpost-timestamp: <epoch seconds>`. Signing the timestamp
 * with the body lets a receiver refuse replays older than its tolerance.
 */
export const SIGNATURE_HEADER = 'x-outpost-signature';
export const TIMESTAMP_HEADER = 'x-outpost-timestamp';
export const DELIVERY_HEADER = 'x-outpost-delivery';
export const EVENT_HEADER = 'x-outpost-event';

export function signWebhook(secret: string, timestampS: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampS}.${body}`, 'utf8').digest('hex');
  return `sha256=${mac}`;
}

/**
 * What a receiver does: recompute and compare in constant time, and refuse a timestamp
 * further than `toleranceS` from its own clock.
 */
export function verifyWebhook(
  secret: string,
  headers: { signature: string | undefined; timestamp: string | undefined },
  body: string,
  nowS: number,
  toleranceS = 300,
): boolean {
  const ts = Number(headers.timestamp);
  if (!headers.signature || !Number.isSafeInteger(ts) || Math.abs(nowS - ts) > toleranceS) {
    return false;
  }
  const expected = Buffer.from(signWebhook(secret, ts, body));
  const given = Buffer.from(headers.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
