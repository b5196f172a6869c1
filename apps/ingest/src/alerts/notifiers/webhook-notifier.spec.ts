import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config.js';
import {
  type NotifierFixture,
  notifierContract,
  outgoing,
  sampleMessage,
} from './notifier.contract.js';
import { WebhookNotifier } from './webhook-notifier.js';
import { verifyWebhook } from './webhook-signature.js';

// Real: node:http receivers on 127.0.0.1, fetch, HMAC. The clock is fixed.

const NOW = Date.parse('2025-03-01T12:00:31Z');
const clock = { now: () => NOW };
// A timeout long enough for a loaded CI machine; the never-answering receiver gets a short one.
const config = loadConfig({ INGEST_ALERT_WEBHOOK_TIMEOUT_MS: '5000' });
const quickConfig = loadConfig({ INGEST_ALERT_WEBHOOK_TIMEOUT_MS: '300' });
const SECRET = 'whsec_contract';

interface Hit {
  headers: IncomingMessage['headers'];
  body: string;
}

async function receiver(
  answer: (hit: Hit, res: ServerResponse) => void = (_h, res) => res.writeHead(204).end(),
): Promise<{ url: string; hits: Hit[]; server: Server; close(): Promise<void> }> {
  const hits: Hit[] = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const hit = { headers: req.headers, body };
    hits.push(hit);
    answer(hit, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    hits,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

notifierContract(
  'webhook',
  async (): Promise<NotifierFixture & { target: { url: string; secret: string } }> => {
    const r = await receiver();
    return {
      notifier: new WebhookNotifier(config, clock),
      target: { url: r.url, secret: SECRET },
      received: async () =>
        r.hits.map((h) => {
          const m = JSON.parse(h.body);
          return {
            id: m.id,
            type: m.type,
            alertId: m.alert.id,
            device: m.alert.device,
            summary: m.summary,
          };
        }),
      close: r.close,
    };
  },
);

describe('WebhookNotifier', () => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });
  const notifier = new WebhookNotifier(config, clock);

  it('signs "<timestamp>.<body>" with the secret and names the delivery and event', async () => {
    const r = await receiver();
    open.push(r);
    const out = outgoing(sampleMessage('n1'), { url: r.url, secret: SECRET });
    expect(await notifier.send(out)).toEqual({ ok: true, status: 204 });
    const [hit] = r.hits;
    expect(hit!.headers['content-type']).toBe('application/json');
    expect(hit!.headers['x-outpost-timestamp']).toBe(String(NOW / 1000));
    expect(hit!.headers['x-outpost-delivery']).toBe('d-n1');
    expect(hit!.headers['x-outpost-event']).toBe('alert.firing');
    expect(hit!.body).toBe(out.body);
    const ok = verifyWebhook(
      SECRET,
      {
        signature: hit!.headers['x-outpost-signature'] as string,
        timestamp: hit!.headers['x-outpost-timestamp'] as string,
      },
      hit!.body,
      Math.floor(NOW / 1000),
    );
    expect(ok).toBe(true);
  });

  it.each([
    [500, true],
    [503, true],
    [429, true],
    [408, true],
    [400, false],
    [404, false],
    [410, false],
    [301, false],
  ])('reports HTTP %d as a failure, retryable: %s', async (status, retryable) => {
    const r = await receiver((_h, res) =>
      res.writeHead(status, status === 301 ? { location: '/elsewhere' } : {}).end(),
    );
    open.push(r);
    const result = await notifier.send(
      outgoing(sampleMessage('n'), { url: r.url, secret: SECRET }),
    );
    expect(result).toMatchObject({ ok: false, retryable, status });
  });

  it('passes on Retry-After', async () => {
    const r = await receiver((_h, res) => res.writeHead(503, { 'retry-after': '120' }).end());
    open.push(r);
    const result = await notifier.send(
      outgoing(sampleMessage('n'), { url: r.url, secret: SECRET }),
    );
    expect(result).toMatchObject({ ok: false, retryable: true, retryAfterMs: 120_000 });
  });

  it('gives up on a receiver that never answers, within the timeout, as retryable', async () => {
    const r = await receiver(() => {});
    open.push(r);
    const result = await new WebhookNotifier(quickConfig, clock).send(
      outgoing(sampleMessage('n'), { url: r.url, secret: SECRET }),
    );
    expect(result).toEqual({
      ok: false,
      retryable: true,
      error: 'no answer within 300 ms',
      status: null,
    });
  });

  it('reports a refused connection as retryable, without throwing', async () => {
    const r = await receiver();
    const url = r.url;
    await r.close();
    const result = await notifier.send(outgoing(sampleMessage('n'), { url, secret: SECRET }));
    expect(result).toMatchObject({ ok: false, retryable: true, status: null });
    expect((result as { error: string }).error).toMatch(/ECONNREFUSED/);
  });

  it('refuses anything but http(s)', async () => {
    const result = await notifier.send(
      outgoing(sampleMessage('n'), { url: 'file:///etc/passwd', secret: SECRET }),
    );
    expect(result).toMatchObject({ ok: false, retryable: false });
  });
});
