import type { Random } from './random.js';

/**
 * A simulated firmware image: a header line `OUTPOST-SIM-FW <hardware> <version>\n`
 * followed by filler bytes. Real bootloaders read the version and target hardware from an
 * image header in the same way; the simulator "reboots" into the version the header names.
 */
export const IMAGE_MAGIC = 'OUTPOST-SIM-FW';
const MAX_HEADER_BYTES = 256;
const HEADER_PATTERN = /^OUTPOST-SIM-FW ([A-Za-z0-9._+-]{1,64}) ([A-Za-z0-9._+-]{1,64})$/;

export interface ImageHeader {
  hardware: string;
  version: string;
}

/** An image of exactly `size` bytes (at least the header's length). */
export function buildFirmwareImage(header: ImageHeader, size: number, random: Random): Uint8Array {
  const text = `${IMAGE_MAGIC} ${header.hardware} ${header.version}\n`;
  if (!HEADER_PATTERN.test(text.slice(0, -1))) throw new Error(`bad image header "${text}"`);
  if (size < text.length) throw new Error(`an image needs at least ${text.length} bytes`);
  const image = new Uint8Array(size);
  for (let i = 0; i < text.length; i++) image[i] = text.charCodeAt(i);
  for (let i = text.length; i < size; i++) image[i] = Math.floor(random() * 256);
  return image;
}

export function readImageHeader(image: Uint8Array): ImageHeader | undefined {
  const end = image.subarray(0, MAX_HEADER_BYTES).indexOf(0x0a);
  if (end < 0) return undefined;
  const match = HEADER_PATTERN.exec(String.fromCharCode(...image.subarray(0, end)));
  return match === null ? undefined : { hardware: match[1]!, version: match[2]! };
}
