import { describe, expect, it } from 'vitest';
import { SseParser } from './sse-parser.js';

describe('SseParser (WHATWG event stream)', () => {
  it('parses the frames the ingest sends', () => {
    const p = new SseParser();
    const events = p.push(
      'retry: 3000\n\nid: 1\nevent: readings\ndata: {"publisher":"gw-1","readings":[]}\n\n: ping\n\nid: 2\nevent: status\ndata: {"deviceId":"d","online":true}\n\n',
    );
    expect(events).toEqual([
      { event: 'readings', data: '{"publisher":"gw-1","readings":[]}', lastEventId: '1' },
      { event: 'status', data: '{"deviceId":"d","online":true}', lastEventId: '2' },
    ]);
    expect(p.retryMs).toBe(3000);
  });

  it('reassembles frames split anywhere, including inside CRLF', () => {
    const text = 'event: a\r\ndata: one\r\n\r\nevent: b\rdata: two\r\r';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(
        events.map((e) => `${e.event}:${e.data}`),
        `cut at ${cut}`,
      ).toEqual(['a:one', 'b:two']);
    }
  });

  it('feeds one character at a time', () => {
    const p = new SseParser();
    const out = [];
    for (const c of 'data: x\n\ndata: y\n\n') out.push(...p.push(c));
    expect(out.map((e) => e.data)).toEqual(['x', 'y']);
  });

  it('joins data lines with newlines, defaults the event name, strips one space', () => {
    const p = new SseParser();
    expect(p.push('data:  two spaces\ndata:next\n\n')).toEqual([
      { event: 'message', data: ' two spaces\nnext', lastEventId: '' },
    ]);
  });

  it('dispatches nothing for frames without data, and ignores unknown fields and comments', () => {
    const p = new SseParser();
    expect(p.push('event: x\n\n: comment\nfoo: bar\n\nid: 7\n\n')).toEqual([]);
    expect(p.push('data\n\n')).toEqual([{ event: 'message', data: '', lastEventId: '7' }]);
  });

  it('ignores a leading byte order mark and a non-numeric retry', () => {
    const p = new SseParser();
    expect(p.push('\uFEFFretry: soon\ndata: a\n\n')).toEqual([
      { event: 'message', data: 'a', lastEventId: '' },
    ]);
    expect(p.retryMs).toBeUndefined();
  });

  it('drops a partial frame on reset', () => {
    const p = new SseParser();
    expect(p.push('event: a\ndata: cut')).toEqual([]);
    p.reset();
    expect(p.push('data: whole\n\n')).toEqual([
      { event: 'message', data: 'whole', lastEventId: '' },
    ]);
  });
});
