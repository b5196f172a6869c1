import type { ServerResponse } from 'node:http';

/**
 * One Server-Sent Events client with a bounded buffer: when the client reads slower than
 * events arrive, the oldest queued events are dropped (and the client is told how many),
 * so a slow consumer never holds memory or slows the sender.
 */
export class SseClient {
  private readonly queue: string[] = [];
  private dropped = 0;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly maxQueued = 1000,
  ) {
    res.on('drain', () => this.flush());
    res.on('close', () => {
      this.closed = true;
      this.queue.length = 0;
    });
  }

  /** Starts the stream: headers and the reconnect delay. */
  open(retryMs: number): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.res.write(`retry: ${retryMs}\n\n`);
  }

  send(event: string, data: unknown): void {
    if (this.closed) return;
    const frame = `id: ${this.nextId++}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    if (this.queue.length > 0 || this.res.writableNeedDrain) {
      this.queue.push(frame);
      if (this.queue.length > this.maxQueued) {
        this.queue.shift();
        this.dropped++;
      }
      return;
    }
    this.res.write(frame);
  }

  /** A comment line keeps proxies from closing an idle stream. */
  heartbeat(): void {
    if (!this.closed && this.queue.length === 0 && !this.res.writableNeedDrain)
      this.res.write(': ping\n\n');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private flush(): void {
    if (this.dropped > 0) {
      const notice = `event: dropped\ndata: ${JSON.stringify({ count: this.dropped })}\n\n`;
      this.dropped = 0;
      if (!this.res.write(notice)) return;
    }
    while (this.queue.length > 0) {
      if (!this.res.write(this.queue.shift()!)) return;
    }
  }
}
