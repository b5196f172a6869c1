import { Injectable } from '@nestjs/common';
import { LiveEvents } from '../../stream/live-events.js';
import type { Notifier, Outgoing, SendResult } from './notifier.js';

/** Alert transitions on the SSE stream (`GET /api/v1/stream`, event `alerts`), in process. */
@Injectable()
export class StreamNotifier implements Notifier {
  readonly channel = 'stream' as const;

  constructor(private readonly live: LiveEvents) {}

  async send(outgoing: Outgoing): Promise<SendResult> {
    this.live.emit('alerts', outgoing.message);
    return { ok: true, status: null };
  }
}
