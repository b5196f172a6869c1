import { createHash } from 'node:crypto';
import {
  formatFwBegin,
  formatFwChunk,
  formatFwEnd,
  formatIdRequest,
  MAX_FW_CHUNK_BYTES,
  parseLine,
  type SerialLine,
} from '@outpost/protocol/serial-line';
import { describe, expect, it } from 'vitest';
import { Bootloader, type BootloaderOptions } from './bootloader.js';
import { buildFirmwareImage } from './firmware-image.js';
import { mulberry32 } from './random.js';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const IDENTITY = { hardware: 'th-v2', serial: 'SN1', version: '1.0.0' };

function image(version = '1.1.0', size = 20 * 1024, hardware = 'th-v2'): Uint8Array {
  return buildFirmwareImage({ hardware, version }, size, mulberry32(size));
}

function chunks(bytes: Uint8Array, size = MAX_FW_CHUNK_BYTES): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  for (let offset = 0; offset < bytes.length; offset += size) {
    out.push([offset, bytes.subarray(offset, offset + size)]);
  }
  return out;
}

/** Sends a line as the application would: formatted, then parsed on the device side. */
function send(boot: Bootloader, line: string, now = 0): string[] | undefined {
  return boot.handle(parseLine(line), now)?.lines;
}

function make(options: Partial<BootloaderOptions> = {}): Bootloader {
  return new Bootloader(IDENTITY, { sha256, rebootMs: 100, ...options });
}

/** BEGIN and every chunk, each expected to be acknowledged. */
function transfer(boot: Bootloader, bytes: Uint8Array): void {
  expect(send(boot, formatFwBegin(bytes.length, sha256(bytes)))).toEqual(['OK 0\n']);
  for (const [offset, data] of chunks(bytes)) {
    expect(send(boot, formatFwChunk(offset, data))).toEqual([`OK ${offset}\n`]);
  }
}

describe('Bootloader', () => {
  it('answers ID? with the running firmware', () => {
    expect(send(make(), formatIdRequest())).toEqual(['ID th-v2 SN1 1.0.0\n']);
  });

  it('ignores lines that are not for it', () => {
    const boot = make();
    for (const line of ['R t=1 *00', 'OK 1', 'ID a b c', 'garbage', 'LOG hi']) {
      expect(send(boot, line)).toBeUndefined();
    }
  });

  it('takes a 20 KiB image in chunks, reboots into its version and says so', () => {
    const boot = make();
    const bytes = image('1.1.0');
    transfer(boot, bytes);
    expect(boot.received).toBe(bytes.length);
    expect(send(boot, formatFwEnd(), 1000)).toEqual([`OK ${bytes.length}\n`]);
    expect(boot.phase).toBe('rebooting');
    // Rebooting: deaf and mute until rebootMs has passed.
    expect(boot.isRebooting(1050)).toBe(true);
    expect(send(boot, formatIdRequest(), 1050)).toBeUndefined();
    expect(boot.nextDueMs()).toBe(1100);
    expect(boot.tick(1099)).toEqual([]);
    expect(boot.tick(1100)).toEqual(['ID th-v2 SN1 1.1.0\n']);
    expect(boot.phase).toBe('idle');
    expect(send(boot, formatIdRequest(), 1200)).toEqual(['ID th-v2 SN1 1.1.0\n']);
    expect(boot.stats).toMatchObject({ begins: 1, chunksOk: 40, updates: 1, errors: 0 });
  });

  it('acknowledges a repeated chunk again and resumes after a second BEGIN', () => {
    const boot = make();
    const bytes = image();
    const parts = chunks(bytes);
    const begin = formatFwBegin(bytes.length, sha256(bytes));
    expect(send(boot, begin)).toEqual(['OK 0\n']);
    for (const [offset, data] of parts.slice(0, 10)) send(boot, formatFwChunk(offset, data));
    // The ack of chunk 9 was lost: the flasher sends it again.
    const [offset9, data9] = parts[9]!;
    expect(send(boot, formatFwChunk(offset9, data9))).toEqual([`OK ${offset9}\n`]);
    // The link dropped; the flasher starts over with the same BEGIN and learns where to go on.
    expect(send(boot, begin)).toEqual([`OK ${10 * MAX_FW_CHUNK_BYTES}\n`]);
    for (const [offset, data] of parts.slice(10)) {
      expect(send(boot, formatFwChunk(offset, data))).toEqual([`OK ${offset}\n`]);
    }
    expect(send(boot, formatFwEnd())).toEqual([`OK ${bytes.length}\n`]);
  });

  it('starts over when BEGIN announces another image', () => {
    const boot = make();
    const first = image('1.1.0');
    send(boot, formatFwBegin(first.length, sha256(first)));
    send(boot, formatFwChunk(0, first.subarray(0, 512)));
    const second = image('1.2.0', 4096);
    expect(send(boot, formatFwBegin(second.length, sha256(second)))).toEqual(['OK 0\n']);
    expect(boot.received).toBe(0);
  });

  it('refuses a chunk with a bad checksum, naming its offset, and takes it when resent', () => {
    const boot = make();
    const bytes = image();
    send(boot, formatFwBegin(bytes.length, sha256(bytes)));
    const good = formatFwChunk(0, bytes.subarray(0, 512));
    const corrupted = good.replace(/\*([0-9A-F]{2})\n$/, (_, hex: string) => {
      return `*${((Number.parseInt(hex, 16) + 1) & 0xff).toString(16).padStart(2, '0')}\n`;
    });
    expect(send(boot, corrupted)).toEqual(['ERR 0 crc\n']);
    expect(boot.received).toBe(0);
    expect(send(boot, good)).toEqual(['OK 0\n']);
  });

  it('refuses a chunk that leaves a gap (out of order) and one past the size', () => {
    const boot = make();
    const bytes = image('1.1.0', 1000);
    send(boot, formatFwBegin(bytes.length, sha256(bytes)));
    expect(send(boot, formatFwChunk(512, bytes.subarray(512, 1000)))).toEqual(['ERR 512 offset\n']);
    expect(send(boot, formatFwChunk(0, bytes.subarray(0, 512)))).toEqual(['OK 0\n']);
    expect(send(boot, formatFwChunk(512, new Uint8Array(500)))).toEqual(['ERR 512 size\n']);
    expect(boot.received).toBe(512);
  });

  it('refuses CHUNK and END without BEGIN, and an image larger than it can stage', () => {
    const boot = make({ maxImageBytes: 4096 });
    expect(send(boot, formatFwChunk(0, new Uint8Array(4)))).toEqual(['ERR 0 state\n']);
    expect(send(boot, formatFwEnd())).toEqual(['ERR 0 state\n']);
    expect(send(boot, formatFwBegin(4097, 'a'.repeat(64)))).toEqual(['ERR 0 too_large\n']);
    expect(send(boot, 'FW CHUNK 0 AAEC *00')).toEqual(['ERR 0 state\n']);
  });

  it('refuses END before every byte arrived (wrong size)', () => {
    const boot = make();
    const bytes = image('1.1.0', 1024);
    send(boot, formatFwBegin(bytes.length, sha256(bytes)));
    send(boot, formatFwChunk(0, bytes.subarray(0, 512)));
    expect(send(boot, formatFwEnd())).toEqual(['ERR 512 size\n']);
    // The staged bytes stay: the rest can still come.
    send(boot, formatFwChunk(512, bytes.subarray(512)));
    expect(send(boot, formatFwEnd())).toEqual(['OK 1024\n']);
  });

  it('refuses an image whose sha256 does not match, and keeps running the old version', () => {
    const boot = make();
    const bytes = image();
    const announced = sha256(image('9.9.9'));
    expect(send(boot, formatFwBegin(bytes.length, announced))).toEqual(['OK 0\n']);
    for (const [offset, data] of chunks(bytes)) send(boot, formatFwChunk(offset, data));
    expect(send(boot, formatFwEnd())).toEqual([`ERR ${bytes.length} sha256\n`]);
    expect(boot.phase).toBe('idle');
    expect(boot.identity.version).toBe('1.0.0');
    // The image was discarded: a new attempt needs a new BEGIN.
    expect(send(boot, formatFwEnd())).toEqual(['ERR 0 state\n']);
  });

  it('refuses an image without a header or for other hardware', () => {
    const noHeader = new Uint8Array(1024).fill(7);
    const boot = make();
    transfer(boot, noHeader);
    expect(send(boot, formatFwEnd())).toEqual(['ERR 1024 image\n']);
    const otherHardware = image('2.0.0', 1024, 'other-hw');
    transfer(boot, otherHardware);
    expect(send(boot, formatFwEnd())).toEqual(['ERR 1024 hardware\n']);
    expect(boot.identity.version).toBe('1.0.0');
  });

  it('failFlash verify: END fails the image check as often as configured', () => {
    const boot = make({ failFlash: { kind: 'verify', times: 1 } });
    const bytes = image();
    transfer(boot, bytes);
    expect(send(boot, formatFwEnd())).toEqual([`ERR ${bytes.length} verify\n`]);
    transfer(boot, bytes);
    expect(send(boot, formatFwEnd())).toEqual([`OK ${bytes.length}\n`]);
  });

  it('failFlash write: the chunk covering the offset fails; a retry succeeds when it may', () => {
    const boot = make({ failFlash: { kind: 'write', atOffset: 5000, times: 2 }, slowMs: 30 });
    const bytes = image();
    send(boot, formatFwBegin(bytes.length, sha256(bytes)));
    for (const [offset, data] of chunks(bytes).slice(0, 9)) {
      expect(boot.handle(parseLine(formatFwChunk(offset, data)), 0)).toEqual({
        lines: [`OK ${offset}\n`],
        delayMs: 30,
      });
    }
    const chunk9 = formatFwChunk(4608, bytes.subarray(4608, 5120));
    expect(send(boot, chunk9)).toEqual(['ERR 4608 flash\n']);
    expect(send(boot, chunk9)).toEqual(['ERR 4608 flash\n']);
    expect(send(boot, chunk9)).toEqual(['OK 4608\n']);
    expect(boot.stats).toMatchObject({ errors: 2, lastError: 'flash' });
  });

  it('failFlash forever: every update fails until the fault is cleared', () => {
    const boot = make({ failFlash: { kind: 'verify' } });
    const bytes = image();
    for (let i = 0; i < 3; i++) {
      transfer(boot, bytes);
      expect(send(boot, formatFwEnd())).toEqual([`ERR ${bytes.length} verify\n`]);
    }
    boot.configure({ failFlash: null });
    transfer(boot, bytes);
    expect(send(boot, formatFwEnd())).toEqual([`OK ${bytes.length}\n`]);
  });

  it('failHealth: reports the new ID, then reverts to the previous version and says so', () => {
    const boot = make({ failHealth: { afterMs: 2000 } });
    const bytes = image('1.1.0');
    transfer(boot, bytes);
    send(boot, formatFwEnd(), 0);
    expect(boot.tick(100)).toEqual(['ID th-v2 SN1 1.1.0\n']);
    expect(boot.phase).toBe('trial');
    expect(boot.nextDueMs()).toBe(2100);
    expect(boot.tick(2099)).toEqual([]);
    expect(boot.tick(2100)).toEqual([
      'LOG health check failed, reverted to 1.0.0\n',
      'ID th-v2 SN1 1.0.0\n',
    ]);
    expect(parseLine('LOG health check failed, reverted to 1.0.0')).toMatchObject({
      revertedTo: '1.0.0',
    });
    expect(boot.identity.version).toBe('1.0.0');
    expect(boot.phase).toBe('idle');
    expect(boot.stats).toMatchObject({ updates: 1, reverts: 1 });
  });

  it('failHealth with times: 1 reverts once, then the next update sticks', () => {
    const boot = make({ failHealth: { afterMs: 10, times: 1 } });
    const bytes = image('1.1.0');
    transfer(boot, bytes);
    send(boot, formatFwEnd(), 0);
    expect(boot.tick(1000)).toEqual([
      'ID th-v2 SN1 1.1.0\n',
      'LOG health check failed, reverted to 1.0.0\n',
      'ID th-v2 SN1 1.0.0\n',
    ]);
    transfer(boot, bytes);
    send(boot, formatFwEnd(), 2000);
    expect(boot.tick(2100)).toEqual(['ID th-v2 SN1 1.1.0\n']);
    expect(boot.nextDueMs()).toBeUndefined();
    expect(boot.tick(60_000)).toEqual([]);
    expect(boot.identity.version).toBe('1.1.0');
  });

  it('never throws on arbitrary input lines', () => {
    const boot = make();
    const lines: SerialLine[] = [
      { kind: 'invalid', reason: 'syntax', offset: 99 },
      { kind: 'invalid', reason: 'charset' },
      { kind: 'fw_chunk', offset: 0, data: new Uint8Array(1) },
    ];
    for (const line of lines) expect(() => boot.handle(line, 0)).not.toThrow();
  });
});
