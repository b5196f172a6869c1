import { formatReading, type ReadingValue } from '@outpost/protocol/serial-line';
import { type Random, randomInt } from './random.js';

/**
 * Broken lines a faulty device or a noisy cable produces. Each is one line ending in `\n`
 * that PROTOCOL.md §10 parsers must refuse, so none of them counts as a sent reading.
 */

/** 1–48 random bytes; the first is not ASCII, so the line can never parse. */
export function garbageLine(random: Random): Uint8Array {
  const length = randomInt(random, 1, 48);
  const bytes = new Uint8Array(length + 1);
  bytes[0] = randomInt(random, 0x80, 0xff);
  for (let i = 1; i < length; i++) {
    let byte = randomInt(random, 0x01, 0xfe);
    if (byte === 0x0a) byte = 0x0b;
    bytes[i] = byte;
  }
  bytes[length] = 0x0a;
  return bytes;
}

/** A reading whose checksum is wrong by a random non-zero XOR. */
export function badCrcLine(values: readonly ReadingValue[], random: Random): string {
  const line = formatReading(values);
  const star = line.lastIndexOf('*');
  const crc = Number.parseInt(line.slice(star + 1, star + 3), 16);
  const wrong = crc ^ randomInt(random, 1, 0xff);
  return `${line.slice(0, star + 1)}${wrong.toString(16).toUpperCase().padStart(2, '0')}\n`;
}

/** A reading cut somewhere before its checksum, as if the device reset mid-line. */
export function partialLine(values: readonly ReadingValue[], random: Random): string {
  const line = formatReading(values);
  const cut = randomInt(random, 1, line.lastIndexOf('*'));
  return `${line.slice(0, cut)}\n`;
}
