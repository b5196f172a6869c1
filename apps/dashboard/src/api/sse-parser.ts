/**
 * An incremental parser for `text/event-stream` (WHATWG HTML §9.2.6, "Interpreting an event
 * stream"). Fed decoded text in chunks of any size; returns the events completed by each
 * chunk. Pure: the transport (fetch streaming, reconnects) lives in live-stream.ts.
 */
export interface SseEvent {
  /** `message` when the frame names no event. */
  event: string;
  data: string;
  /** The last event id seen so far, as the spec defines it (sticky across events). */
  lastEventId: string;
}

export class SseParser {
  private buffer = '';
  private started = false;
  private pendingCr = false;
  private data: string[] = [];
  private event = '';
  private lastEventId = '';
  /** The reconnection time the server asked for (`retry:`), in milliseconds. */
  retryMs: number | undefined;

  push(chunk: string): SseEvent[] {
    let text = chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      // A leading U+FEFF BYTE ORDER MARK is ignored.
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // A CR at the end of the last chunk may be the first half of CRLF.
    if (this.pendingCr) {
      this.pendingCr = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 < this.buffer.length) {
          if (this.buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCr = true;
        }
      }
      start = i + 1;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** Forgets a partial frame, as when the connection is lost (the spec drops it). */
  reset(): void {
    this.buffer = '';
    this.pendingCr = false;
    this.started = false;
    this.data = [];
    this.event = '';
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = '';
    // A frame without data lines dispatches nothing.
    if (data.length === 0) return undefined;
    return { event: event || 'message', data: data.join('\n'), lastEventId: this.lastEventId };
  }
}
