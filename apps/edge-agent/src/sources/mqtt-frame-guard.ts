/**
 * Reads MQTT fixed headers as bytes arrive and refuses a packet whose Remaining Length is
 * over the limit before its body is buffered: aedes has no packet size limit of its own
 * (it buffered 100 MB before CONNECT in our measurements). Pure: the listener feeds it chunks.
 *
 * [MQTT-2.2.3] Remaining Length is a variable-length integer of at most 4 bytes.
 * [MQTT-3.1.0-1] The first packet from the client must be CONNECT.
 */
export type FrameVerdict = { ok: true } | { ok: false; reason: string };

const CONNECT = 1;

export class MqttFrameGuard {
  /** Bytes of the current packet's body still to pass. */
  #remaining = 0;
  /** Header bytes collected so far (type byte + length bytes). */
  #header: number[] = [];
  #packets = 0;

  constructor(
    private readonly maxPacketBytes: number,
    /** Limit for the CONNECT packet (client id and credentials only). */
    private readonly maxConnectBytes: number,
  ) {}

  check(chunk: Uint8Array): FrameVerdict {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const skip = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= skip;
        i += skip;
        continue;
      }
      this.#header.push(chunk[i]!);
      i++;
      if (this.#header.length === 1) {
        if (this.#packets === 0 && this.#header[0]! >> 4 !== CONNECT) {
          return { ok: false, reason: 'first packet is not CONNECT' };
        }
        continue;
      }
      if (this.#header.at(-1)! & 0x80) {
        if (this.#header.length === 5) return { ok: false, reason: 'malformed remaining length' };
        continue;
      }
      let length = 0;
      for (let k = this.#header.length - 1; k >= 1; k--) {
        length = length * 128 + (this.#header[k]! & 0x7f);
      }
      const limit = this.#packets === 0 ? this.maxConnectBytes : this.maxPacketBytes;
      if (length > limit) {
        return { ok: false, reason: `packet of ${length} bytes is over the ${limit}-byte limit` };
      }
      this.#packets++;
      this.#header = [];
      this.#remaining = length;
    }
    return { ok: true };
  }
}
