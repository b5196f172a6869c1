import { describe, expect, it } from 'vitest';
import { FrameGuard } from './frame-guard.js';

const varint = (n: number) => {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
};
const packet = (type: number, bodyLength: number) =>
  Uint8Array.from([type << 4, ...varint(bodyLength), ...new Array(bodyLength).fill(0)]);
const header = (type: number, bodyLength: number) =>
  Uint8Array.from([type << 4, ...varint(bodyLength)]);

describe('FrameGuard', () => {
  it('passes packets within limits, whatever the chunking', () => {
    const stream = Uint8Array.from([
      ...packet(1, 50),
      ...packet(3, 1000),
      ...packet(12, 0),
      ...packet(3, 200),
    ]);
    for (const size of [1, 2, 3, 7, 64, stream.length]) {
      const g = new FrameGuard(1000, 100);
      for (let i = 0; i < stream.length; i += size) {
        expect(g.check(stream.subarray(i, i + size))).toEqual({ ok: true });
      }
    }
  });

  it('refuses an oversized packet from its header alone, before the body arrives', () => {
    const g = new FrameGuard(256 * 1024, 8192);
    expect(g.check(packet(1, 100)).ok).toBe(true);
    const verdict = g.check(header(3, 100 * 1024 * 1024));
    expect(verdict).toEqual({
      ok: false,
      reason: expect.stringContaining('over the 262144-byte limit'),
    });
  });

  it('applies the smaller limit to CONNECT and requires CONNECT first', () => {
    expect(new FrameGuard(1000, 100).check(header(1, 101)).ok).toBe(false);
    expect(new FrameGuard(1000, 100).check(header(3, 10))).toEqual({
      ok: false,
      reason: 'first packet is not CONNECT',
    });
  });

  it('refuses a remaining length longer than four bytes', () => {
    const g = new FrameGuard(1000, 100);
    g.check(packet(1, 10));
    expect(g.check(Uint8Array.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])).ok).toBe(false);
  });
});
