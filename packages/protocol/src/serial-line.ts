import { ProtocolError } from './errors.js';
import { METRIC_NAME_PATTERN } from './ids.js';

/**
 * PROTOCOL.md §10: the ASCII line protocol of serial devices, both directions.
 *
 * Device → application: `R` readings, `ID` identity, `OK` / `ERR` firmware acks, `LOG` text.
 * Application → device: `ID?`, `FW BEGIN`, `FW CHUNK`, `FW END`.
 *
 * Every line is printable ASCII (0x20–0x7E) ended by `\n` (a `\r` before it is tolerated),
 * fields are separated by exactly one space, and a line holds at most
 * {@link MAX_SERIAL_LINE_LENGTH} bytes before the `\n`.
 *
 * CRC coverage: a line with a checksum ends in ` *<hh>` (two hex digits, written in upper
 * case, read in either case). The CRC-8/ATM covers every byte after the line's keyword (`R`,
 * `FW CHUNK`) up to, not including, the `*`, spaces included. For `R t=21.5 h=40 *hh` that is
 * ` t=21.5 h=40 ` (leading and trailing space); for `FW CHUNK 0 AAEC *hh` it is ` 0 AAEC `.
 * A chunk's checksum thus guards its offset as well as its data.
 *
 * This module is isomorphic (no Node built-ins): the edge agent's parser, the simulator and
 * the browser share it.
 */

// TextEncoder is global in Node and browsers but not part of lib ES2023.
declare const TextEncoder: new () => { encode(input: string): Uint8Array };
/** One encoder for every checksum: `crc8Atm` runs once per received line. */
const utf8 = new TextEncoder();

/** PROTOCOL.md §10: default line speed. */
export const SERIAL_DEFAULT_BAUD = 115_200;
/** Longest line in bytes, not counting the `\n`; longer lines are refused as `too_long`. */
export const MAX_SERIAL_LINE_LENGTH = 1024;
/** Largest data in one `FW CHUNK` (its base64 is 684 characters, the line at most 708). */
export const MAX_FW_CHUNK_BYTES = 512;
/** Longest hardware id, serial number and firmware version in an `ID` line. */
export const MAX_SERIAL_TOKEN_LENGTH = 64;
/** Longest `ERR` reason. */
export const MAX_ERR_REASON_LENGTH = 32;
/** Largest offset or size written in a line: ten decimal digits. */
export const MAX_SERIAL_OFFSET = 9_999_999_999;

/** `ERR <offset> <reason>` reasons a device sends; parsers accept any `[a-z0-9_]` word. */
export const FW_ERROR_REASONS = [
  'crc', // the chunk's checksum did not match
  'syntax', // a FW line the device could not read
  'state', // CHUNK or END without a BEGIN
  'offset', // a chunk past the bytes received so far (a gap)
  'size', // a chunk past the announced size, or END before all bytes arrived
  'too_large', // BEGIN announced more than the device can stage
  'flash', // writing the chunk to flash failed
  'sha256', // the staged image does not match the announced sha256
  'verify', // the device's own image check failed
  'image', // the image carries no header the bootloader understands
  'hardware', // the image is built for other hardware
] as const;
export type FwErrorReason = (typeof FW_ERROR_REASONS)[number];

/** Why {@link parseLine} refused a line. */
export const INVALID_LINE_REASONS = [
  'empty',
  'too_long',
  'charset', // a byte outside printable ASCII
  'unknown', // no keyword of PROTOCOL.md §10
  'syntax',
  'crc',
  'metric', // a metric name that breaks PROTOCOL.md §1
  'value', // a number that is not finite
  'duplicate', // a metric twice in one reading
] as const;
export type InvalidLineReason = (typeof INVALID_LINE_REASONS)[number];

export type ReadingValue = readonly [metric: string, value: number];

export interface DeviceIdentity {
  hardware: string;
  serial: string;
  version: string;
}

/** One parsed line. */
export type SerialLine =
  | { kind: 'reading'; values: ReadingValue[] }
  | { kind: 'id_request' }
  | ({ kind: 'id' } & DeviceIdentity)
  | { kind: 'fw_begin'; size: number; sha256: string }
  | { kind: 'fw_chunk'; offset: number; data: Uint8Array }
  | { kind: 'fw_end' }
  | { kind: 'ok'; offset: number }
  | { kind: 'err'; offset: number; reason: string }
  /** `revertedTo` is set for the line of {@link formatHealthRevertLog}. */
  | { kind: 'log'; text: string; revertedTo?: string }
  /** `offset` is set for a `FW CHUNK` whose offset field reads, so the device can `ERR` it. */
  | { kind: 'invalid'; reason: InvalidLineReason; offset?: number };

export type SerialLineKind = SerialLine['kind'];

// ---------------------------------------------------------------------------------------
// CRC-8/ATM (a.k.a. CRC-8/SMBUS): poly 0x07, init 0x00, not reflected, xorout 0x00.

const CRC8_TABLE = (() => {
  const table = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : crc << 1;
    table[i] = crc;
  }
  return table;
})();

/** CRC-8/ATM of bytes, or of a string's UTF-8 bytes. Check value: `"123456789"` → 0xF4. */
export function crc8Atm(input: Uint8Array | string): number {
  const bytes = typeof input === 'string' ? utf8.encode(input) : input;
  let crc = 0;
  for (const byte of bytes) crc = CRC8_TABLE[crc ^ byte]!;
  return crc;
}

function crcHex(text: string): string {
  return crc8Atm(text).toString(16).toUpperCase().padStart(2, '0');
}

// ---------------------------------------------------------------------------------------
// Base64 (RFC 4648 §4, with padding). Decoding is strict: only the canonical encoding of
// some bytes is accepted, so one chunk has one spelling.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = (() => {
  const index = new Int16Array(128).fill(-1);
  for (let i = 0; i < B64.length; i++) index[B64.charCodeAt(i)] = i;
  return index;
})();

export function encodeBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1];
    const c = bytes[i + 2];
    const n = (a << 16) | ((b ?? 0) << 8) | (c ?? 0);
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!;
    out += b === undefined ? '=' : B64[(n >> 6) & 63]!;
    out += c === undefined ? '=' : B64[n & 63]!;
  }
  return out;
}

/** The bytes of a canonical base64 string, or undefined. */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const code = text.charCodeAt(i + j);
      const isPad = code === 0x3d && i + 4 === text.length && j >= 4 - pad;
      const value = isPad ? 0 : code < 128 ? B64_INDEX[code]! : -1;
      if (value < 0) return undefined;
      n = (n << 6) | value;
    }
    out[o++] = (n >> 16) & 0xff;
    if (o < out.length) out[o++] = (n >> 8) & 0xff;
    if (o < out.length) out[o++] = n & 0xff;
  }
  // Canonical: the bits a padded group leaves unused must be zero.
  if (pad > 0 && encodeBase64(out) !== text) return undefined;
  return out;
}

// ---------------------------------------------------------------------------------------
// Builders. Each returns one line ending in `\n`, and throws `payload_invalid` rather than
// build a line parseLine would refuse.

const TOKEN_PATTERN = /^[A-Za-z0-9._+-]{1,64}$/;
const ERR_REASON_PATTERN = /^[a-z0-9_]{1,32}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const DECIMAL_PATTERN = /^(?:0|[1-9][0-9]{0,9})$/;
// The JSON number grammar (RFC 8259 §6), which Number#toString produces for finite numbers.
const NUMBER_PATTERN = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
const PRINTABLE_PATTERN = /^[\x20-\x7e]*$/;
const HEALTH_REVERT_PATTERN = /^health check failed, reverted to ([A-Za-z0-9._+-]{1,64})$/;

function invalidInput(message: string, details: Record<string, unknown>): ProtocolError {
  return new ProtocolError('payload_invalid', message, { details });
}

function checkLength(line: string): string {
  if (line.length > MAX_SERIAL_LINE_LENGTH) {
    throw invalidInput('serial line too long', { length: line.length });
  }
  return `${line}\n`;
}

function checkOffset(offset: number, name = 'offset'): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > MAX_SERIAL_OFFSET) {
    throw invalidInput(`${name} must be an integer in 0..${MAX_SERIAL_OFFSET}`, { [name]: offset });
  }
}

function checkToken(value: string, name: string): void {
  if (!TOKEN_PATTERN.test(value)) {
    throw invalidInput(`${name} must match ${TOKEN_PATTERN.source}`, { [name]: value });
  }
}

/** `R t=21.5 h=40 *hh\n`: values in the order given; at least one; names unique. */
export function formatReading(values: readonly ReadingValue[]): string {
  if (values.length === 0) throw invalidInput('a reading needs at least one value', {});
  const seen = new Set<string>();
  let body = '';
  for (const [metric, value] of values) {
    if (!METRIC_NAME_PATTERN.test(metric)) throw invalidInput('bad metric name', { metric });
    if (seen.has(metric)) throw invalidInput('metric given twice', { metric });
    if (!Number.isFinite(value)) throw invalidInput('value must be finite', { metric, value });
    seen.add(metric);
    body += ` ${metric}=${String(value)}`;
  }
  body += ' ';
  return checkLength(`R${body}*${crcHex(body)}`);
}

export function formatIdRequest(): string {
  return 'ID?\n';
}

export function formatId(identity: DeviceIdentity): string {
  checkToken(identity.hardware, 'hardware');
  checkToken(identity.serial, 'serial');
  checkToken(identity.version, 'version');
  return `ID ${identity.hardware} ${identity.serial} ${identity.version}\n`;
}

export function formatFwBegin(size: number, sha256: string): string {
  checkOffset(size, 'size');
  if (size === 0) throw invalidInput('an image has at least one byte', { size });
  if (!SHA256_PATTERN.test(sha256)) {
    throw invalidInput('sha256 must be 64 lower-case hex digits', { sha256 });
  }
  return `FW BEGIN ${size} ${sha256}\n`;
}

export function formatFwChunk(offset: number, data: Uint8Array): string {
  checkOffset(offset);
  if (data.length === 0 || data.length > MAX_FW_CHUNK_BYTES) {
    throw invalidInput(`a chunk holds 1..${MAX_FW_CHUNK_BYTES} bytes`, { length: data.length });
  }
  const body = ` ${offset} ${encodeBase64(data)} `;
  return checkLength(`FW CHUNK${body}*${crcHex(body)}`);
}

export function formatFwEnd(): string {
  return 'FW END\n';
}

export function formatOk(offset: number): string {
  checkOffset(offset);
  return `OK ${offset}\n`;
}

export function formatErr(offset: number, reason: string): string {
  checkOffset(offset);
  if (!ERR_REASON_PATTERN.test(reason)) {
    throw invalidInput(`reason must match ${ERR_REASON_PATTERN.source}`, { reason });
  }
  return `ERR ${offset} ${reason}\n`;
}

export function formatLog(text: string): string {
  if (text.length === 0 || !PRINTABLE_PATTERN.test(text)) {
    throw invalidInput('log text must be non-empty printable ASCII', {});
  }
  return checkLength(`LOG ${text}`);
}

/** What a device says when its new firmware failed the health check and it went back. */
export function formatHealthRevertLog(revertedTo: string): string {
  checkToken(revertedTo, 'version');
  return formatLog(`health check failed, reverted to ${revertedTo}`);
}

// ---------------------------------------------------------------------------------------
// Parser. Never throws: anything that is not a well-formed line is `invalid`.

function invalid(reason: InvalidLineReason, offset?: number): SerialLine {
  return offset === undefined ? { kind: 'invalid', reason } : { kind: 'invalid', reason, offset };
}

function readDecimal(text: string): number | undefined {
  return DECIMAL_PATTERN.test(text) ? Number(text) : undefined;
}

const READING_PATTERN = /^R((?: [^ *]+)+ )\*([0-9A-Fa-f]{2})$/;
const CHUNK_PATTERN = /^FW CHUNK( ([^ *]+) ([^ *]+) )\*([0-9A-Fa-f]{2})$/;

function parseReading(line: string): SerialLine {
  const match = READING_PATTERN.exec(line);
  if (match === null) return invalid('syntax');
  const body = match[1]!;
  if (crc8Atm(body) !== Number.parseInt(match[2]!, 16)) return invalid('crc');
  const values: ReadingValue[] = [];
  const seen = new Set<string>();
  for (const pair of body.slice(1, -1).split(' ')) {
    const eq = pair.indexOf('=');
    if (eq < 0) return invalid('syntax');
    const metric = pair.slice(0, eq);
    const text = pair.slice(eq + 1);
    if (!METRIC_NAME_PATTERN.test(metric)) return invalid('metric');
    if (!NUMBER_PATTERN.test(text)) return invalid('syntax');
    const value = Number(text);
    if (!Number.isFinite(value)) return invalid('value');
    if (seen.has(metric)) return invalid('duplicate');
    seen.add(metric);
    values.push([metric, value]);
  }
  return { kind: 'reading', values };
}

function parseFw(line: string, fields: string[]): SerialLine {
  switch (fields[1]) {
    case 'BEGIN': {
      const size = fields.length === 4 ? readDecimal(fields[2]!) : undefined;
      const sha256 = fields[3]?.toLowerCase();
      if (size === undefined || size === 0 || sha256 === undefined) return invalid('syntax');
      return SHA256_PATTERN.test(sha256) ? { kind: 'fw_begin', size, sha256 } : invalid('syntax');
    }
    case 'CHUNK': {
      const match = CHUNK_PATTERN.exec(line);
      const offset = readDecimal(fields[2] ?? '');
      if (match === null) return invalid('syntax', offset);
      if (crc8Atm(match[1]!) !== Number.parseInt(match[4]!, 16)) return invalid('crc', offset);
      const data = decodeBase64(match[3]!);
      if (offset === undefined || data === undefined) return invalid('syntax', offset);
      if (data.length === 0 || data.length > MAX_FW_CHUNK_BYTES) return invalid('syntax', offset);
      return { kind: 'fw_chunk', offset, data };
    }
    case 'END':
      return fields.length === 2 ? { kind: 'fw_end' } : invalid('syntax');
    default:
      return invalid('syntax');
  }
}

/**
 * Reads one line, with or without its `\n` (or `\r\n`). Never throws; a line that breaks
 * PROTOCOL.md §10 comes back as `{ kind: 'invalid', reason }`.
 */
export function parseLine(input: string): SerialLine {
  let line = input.endsWith('\n') ? input.slice(0, -1) : input;
  if (line.endsWith('\r')) line = line.slice(0, -1);
  if (line.length > MAX_SERIAL_LINE_LENGTH) return invalid('too_long');
  if (line.length === 0) return invalid('empty');
  if (!PRINTABLE_PATTERN.test(line)) return invalid('charset');
  const fields = line.split(' ');
  switch (fields[0]) {
    case 'R':
      return parseReading(line);
    case 'ID?':
      return fields.length === 1 ? { kind: 'id_request' } : invalid('syntax');
    case 'ID': {
      const [, hardware, serial, version] = fields;
      if (fields.length !== 4 || ![hardware, serial, version].every(isToken)) {
        return invalid('syntax');
      }
      return { kind: 'id', hardware: hardware!, serial: serial!, version: version! };
    }
    case 'FW':
      return parseFw(line, fields);
    case 'OK': {
      const offset = fields.length === 2 ? readDecimal(fields[1]!) : undefined;
      return offset === undefined ? invalid('syntax') : { kind: 'ok', offset };
    }
    case 'ERR': {
      const offset = fields.length === 3 ? readDecimal(fields[1]!) : undefined;
      const reason = fields[2] ?? '';
      if (offset === undefined || !ERR_REASON_PATTERN.test(reason)) return invalid('syntax');
      return { kind: 'err', offset, reason };
    }
    case 'LOG': {
      const text = line.slice(4);
      if (text.length === 0) return invalid('syntax');
      const revertedTo = HEALTH_REVERT_PATTERN.exec(text)?.[1];
      return revertedTo === undefined ? { kind: 'log', text } : { kind: 'log', text, revertedTo };
    }
    default:
      return invalid('unknown');
  }
}

function isToken(value: string | undefined): boolean {
  return value !== undefined && TOKEN_PATTERN.test(value);
}

// ---------------------------------------------------------------------------------------
// Framing.

/**
 * Splits a byte stream into lines (without `\n`), holding at most
 * {@link MAX_SERIAL_LINE_LENGTH} + 1 bytes of a pending line: the rest of an over-long line
 * is dropped up to its `\n`, and what is kept still parses as `too_long`. Bytes map to
 * characters one to one (Latin-1), so a non-ASCII byte parses as `charset`.
 */
export class LineSplitter {
  readonly #maxLength: number;
  #pending = '';
  #overflow = false;

  constructor(maxLength = MAX_SERIAL_LINE_LENGTH) {
    this.#maxLength = maxLength;
  }

  /** The complete lines that `chunk` ends. */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    for (const code of chunk) {
      if (code === 0x0a) {
        lines.push(this.#pending);
        this.#pending = '';
        this.#overflow = false;
      } else if (!this.#overflow) {
        this.#pending += String.fromCharCode(code);
        this.#overflow = this.#pending.length > this.#maxLength;
      }
    }
    return lines;
  }

  /** Bytes of an unfinished line are waiting. */
  get partial(): boolean {
    return this.#pending.length > 0;
  }

  /** Drops an unfinished line, e.g. after the port closed mid-line. */
  reset(): void {
    this.#pending = '';
    this.#overflow = false;
  }
}
