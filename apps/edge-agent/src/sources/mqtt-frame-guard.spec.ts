import { describe, expect, it } from 'vitest';
import { MqttFrameGuard } from './mqtt-frame-guard.js';

/** A fixed header for packet `type` with `length` body bytes ([MQTT-2.2.3]). */
function header(type: number, length: number): number[] {
  const out = [type << 4];
  let rest = length;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    out.push(byte);
  } while (rest > 0);
  return out;
}

const packet = (type: number, length: number) =>
  new Uint8Array([...header(type, length), ...new Array(length).fill(0)]);

describe('MqttFrameGuard', () => {
  it('passes packets under the limits, in any chunking', () => {
    const guard = new MqttFrameGuard(100, 50);
    const stream = new Uint8Array([...packet(1, 40), ...packet(3, 100), ...packet(12, 0)]);
    for (let i = 0; i < stream.length; i += 7) {
      expect(guard.check(stream.subarray(i, i + 7))).toEqual({ ok: true });
    }
  });

  it('refuses an oversized packet from its header, before the body', () => {
    const guard = new MqttFrameGuard(100, 50);
    expect(guard.check(packet(1, 10))).toEqual({ ok: true });
    expect(guard.check(new Uint8Array(header(3, 100_000_000)))).toEqual({
      ok: false,
      reason: 'packet of 100000000 bytes is over the 100-byte limit',
    });
  });

  it.each([
    ['a first packet that is not CONNECT', [3 << 4, 0], 'first packet is not CONNECT'],
    ['an oversized CONNECT', header(1, 51), 'packet of 51 bytes is over the 50-byte limit'],
    [
      'a five-byte remaining length',
      [1 << 4, 0xff, 0xff, 0xff, 0xff, 0x7f],
      'malformed remaining length',
    ],
  ])('refuses %s', (_name, bytes, reason) => {
    expect(new MqttFrameGuard(100, 50).check(new Uint8Array(bytes))).toEqual({ ok: false, reason });
  });
});
