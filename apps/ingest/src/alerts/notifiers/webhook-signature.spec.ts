import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook } from './webhook-signature.js';

// Unit: pure HMAC signing and checking.

describe('webhook signatures', () => {
  const body = '{"v":1,"type":"alert.firing"}';

  it('is the hex HMAC-SHA256 of "<timestamp>.<body>"', () => {
    const expected = createHmac('sha256', 'whsec_test').update(`1700000000.${body}`).digest('hex');
    expect(signWebhook('whsec_test', 1_700_000_000, body)).toBe(`sha256=${expected}`);
  });

  it('verifies, and refuses another body, secret, timestamp or an old timestamp', () => {
    const signature = signWebhook('s', 1000, body);
    expect(verifyWebhook('s', { signature, timestamp: '1000' }, body, 1100)).toBe(true);
    expect(verifyWebhook('s', { signature, timestamp: '1000' }, `${body} `, 1100)).toBe(false);
    expect(verifyWebhook('t', { signature, timestamp: '1000' }, body, 1100)).toBe(false);
    expect(verifyWebhook('s', { signature, timestamp: '1001' }, body, 1100)).toBe(false);
    expect(verifyWebhook('s', { signature, timestamp: '1000' }, body, 1400)).toBe(false);
    expect(verifyWebhook('s', { signature: undefined, timestamp: '1000' }, body, 1000)).toBe(false);
  });
});
