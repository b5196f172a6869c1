import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AlertMessage } from '../../src/alerts/notification.js';

/** A webhook receiver on 127.0.0.1 that answers 204 and keeps every alert message. */
export async function webhookReceiver() {
  const hits: AlertMessage[] = [];
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    hits.push(JSON.parse(body) as AlertMessage);
    res.writeHead(204).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    hits,
    /** The message types received for one device, in order. */
    of: (device: string) => hits.filter((m) => m.alert.device === device).map((m) => m.type),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
