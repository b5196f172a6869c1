import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LogNotifier } from './log-notifier.js';
import { notifierContract, outgoing, sampleMessage } from './notifier.contract.js';

// Real: pino writing JSON lines to an in-memory stream.

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: pino({ level: 'debug' }, stream) };
}

notifierContract('log', async () => {
  const { lines, logger } = capture();
  return {
    notifier: new LogNotifier(logger),
    received: async () =>
      lines.map((l) => ({
        id: l.notificationId as string,
        type: l.event as string,
        alertId: l.alertId as string,
        device: l.deviceId as string,
        summary: l.msg as string,
      })),
    close: async () => {},
  };
});

describe('LogNotifier', () => {
  it('logs paging events at info and the rest at debug, without the message body', async () => {
    const { lines, logger } = capture();
    const notifier = new LogNotifier(logger);
    await notifier.send(outgoing(sampleMessage('a')));
    await notifier.send(outgoing(sampleMessage('b', { type: 'alert.pending' })));
    expect(lines.map((l) => [l.level, l.event])).toEqual([
      [30, 'alert.firing'],
      [20, 'alert.pending'],
    ]);
    expect(lines[0]).not.toHaveProperty('explain');
    expect(lines[0]).toMatchObject({ module: 'alerts', ruleId: 'r1', severity: 'critical' });
  });
});
