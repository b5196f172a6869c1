import { describe, expect, it } from 'vitest';
import { BatchOutbox, type OutboxBatch } from './batch-outbox.js';

let nextSeq = 1;
function batch(readings: number, messages = 1): OutboxBatch {
  const seq: [number, number] = [nextSeq, nextSeq + readings - 1];
  nextSeq += readings;
  return {
    seq,
    readings,
    values: { t: readings },
    messages: Array.from({ length: messages }, (_, i) => ({ topic: `t/${i}`, payload: 'x' })),
  };
}

describe('BatchOutbox', () => {
  it('sends oldest first within the window and counts each ack once', () => {
    const outbox = new BatchOutbox(2);
    const [a, b, c] = [batch(10), batch(5), batch(3)];
    for (const x of [a, b, c]) outbox.add(x);
    expect(outbox.pendingReadings).toBe(18);
    expect(outbox.takeDue(100).map((e) => e.batch)).toEqual([a, b]);
    expect(outbox.takeDue(101)).toEqual([]);
    expect(outbox.ack(b, 0)).toBe(true);
    expect(outbox.ack(b, 0)).toBe(false);
    expect(outbox.takeDue(102).map((e) => e.batch)).toEqual([c]);
    expect(outbox.oldestInflightSentAt()).toBe(100);
    expect(outbox.counters()).toEqual({
      batches: { published: 3, resent: 0, acked: 1, rejected: 0 },
      readings: { published: 18, acked: 5, rejected: 0 },
      values: { t: 5 },
    });
    expect(outbox.pendingReadings).toBe(13);
    expect(outbox.pendingBatches).toBe(2);
  });

  it('sends again what was in flight when the connection ended; a late copy acks once', () => {
    const outbox = new BatchOutbox(4);
    const [a, b] = [batch(2), batch(2)];
    outbox.add(a);
    outbox.add(b);
    outbox.takeDue(0);
    outbox.ack(a, 0);
    outbox.requeue();
    expect(outbox.inflight).toBe(0);
    expect(outbox.takeDue(1).map((e) => e.batch)).toEqual([b]);
    expect(outbox.ack(b, 0)).toBe(true);
    expect(outbox.ack(b, 0)).toBe(false);
    const c = outbox.counters();
    expect(c.batches).toEqual({ published: 2, resent: 1, acked: 2, rejected: 0 });
    expect(c.readings).toEqual({ published: 4, acked: 4, rejected: 0 });
    expect(outbox.pendingReadings).toBe(0);
  });

  it('acks a batch of several messages when all of them are acked, resending only the rest', () => {
    const outbox = new BatchOutbox(1);
    const a = batch(1, 3);
    outbox.add(a);
    expect(outbox.takeDue(0)[0]!.unacked).toEqual([0, 1, 2]);
    expect(outbox.ack(a, 1)).toBe(false);
    outbox.requeue();
    expect(outbox.takeDue(1)[0]!.unacked).toEqual([0, 2]);
    expect(outbox.ack(a, 0)).toBe(false);
    expect(outbox.ack(a, 2)).toBe(true);
    expect(outbox.counters().readings.acked).toBe(1);
  });

  it('counts a refusal once, whether it comes before or after the PUBACK', () => {
    const outbox = new BatchOutbox(8);
    const [before, after, other] = [batch(4), batch(6), batch(1)];
    for (const x of [before, after, other]) outbox.add(x);
    outbox.takeDue(0);
    // Refused before its PUBACK: it leaves the outbox and is not sent again...
    expect(outbox.reject(before.seq!)).toBe('rejected');
    outbox.requeue();
    expect(outbox.takeDue(1).map((e) => e.batch)).toEqual([after, other]);
    // ...and its PUBACK still counts it as acknowledged.
    expect(outbox.ack(before, 0)).toBe(true);
    expect(outbox.ack(after, 0)).toBe(true);
    expect(outbox.reject(after.seq!)).toBe('rejected');
    expect(outbox.reject(after.seq!)).toBe('again');
    expect(outbox.reject([9000, 9001])).toBe('unknown');
    expect(outbox.counters()).toMatchObject({
      batches: { acked: 2, rejected: 2 },
      readings: { acked: 10, rejected: 10 },
    });
    expect(outbox.pendingReadings).toBe(1);
  });

  it('refuses a window below 1', () => {
    expect(() => new BatchOutbox(0)).toThrow(RangeError);
  });
});
