import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import {
  crc8Atm,
  decodeBase64,
  encodeBase64,
  formatErr,
  formatFwBegin,
  formatFwChunk,
  formatFwEnd,
  formatHealthRevertLog,
  formatId,
  formatIdRequest,
  formatLog,
  formatOk,
  formatReading,
  LineSplitter,
  MAX_FW_CHUNK_BYTES,
  MAX_SERIAL_LINE_LENGTH,
  MAX_SERIAL_OFFSET,
  parseLine,
  type ReadingValue,
} from './serial-line.js';

const SHA = 'ab'.repeat(32);
const bytes = (text: string) => new TextEncoder().encode(text);

describe('crc8Atm (CRC-8/ATM: poly 0x07, init 0, no reflection, xorout 0)', () => {
  it('has the catalogue check value 0xF4 for "123456789"', () => {
    expect(crc8Atm('123456789')).toBe(0xf4);
    expect(crc8Atm(bytes('123456789'))).toBe(0xf4);
  });

  it('is 0 for no bytes and equals the byte for one byte below 0x80 shifted in', () => {
    expect(crc8Atm('')).toBe(0);
    expect(crc8Atm(new Uint8Array([0x01]))).toBe(0x07);
    expect(crc8Atm(new Uint8Array([0x80]))).toBe(0x89);
  });

  it('hashes a string as its UTF-8 bytes', () => {
    expect(crc8Atm('é')).toBe(crc8Atm(new Uint8Array([0xc3, 0xa9])));
  });
});

describe('readings (PROTOCOL.md §10)', () => {
  it('covers the bytes between R and *, both spaces included', () => {
    expect(crc8Atm(' t=21.5 h=40 ')).toBe(0x29);
    expect(
      formatReading([
        ['t', 21.5],
        ['h', 40],
      ]),
    ).toBe('R t=21.5 h=40 *29\n');
    expect(parseLine('R t=21.5 h=40 *29\n')).toEqual({
      kind: 'reading',
      values: [
        ['t', 21.5],
        ['h', 40],
      ],
    });
  });

  it('reads the checksum in either case and tolerates CRLF', () => {
    const line = formatReading([['x', 1]]).trimEnd();
    const hex = line.slice(-2);
    expect(parseLine(`${line.slice(0, -2)}${hex.toLowerCase()}\r\n`).kind).toBe('reading');
  });

  it('refuses a reading whose text or checksum was changed', () => {
    expect(parseLine('R t=21.5 h=41 *29')).toEqual({ kind: 'invalid', reason: 'crc' });
    expect(parseLine('R t=21.5 h=40 *2A')).toEqual({ kind: 'invalid', reason: 'crc' });
    // The CRC of the trimmed text would be D3: leading and trailing spaces count.
    expect(parseLine('R t=21.5 h=40 *D3')).toEqual({ kind: 'invalid', reason: 'crc' });
  });

  it('writes numbers so they read back exactly, exponents included', () => {
    for (const value of [0, -0.5, 1e21, 1.5e-7, -123456789.125, Number.MAX_VALUE]) {
      const parsed = parseLine(formatReading([['v', value]]));
      expect(parsed).toEqual({ kind: 'reading', values: [['v', value]] });
    }
  });

  it.each<[string, string]>([
    ['R t=1 *', 'syntax'],
    ['R *00', 'syntax'],
    ['R', 'syntax'],
    ['R  t=1 *00', 'syntax'],
    ['R t=1*00', 'syntax'],
    ['R t=1 *0', 'syntax'],
  ])('%j is %s', (line, reason) => {
    expect(parseLine(line)).toEqual({ kind: 'invalid', reason });
  });

  /** A line with the right CRC around any body, to reach the field checks. */
  const signed = (body: string) => {
    const text = ` ${body} `;
    return `R${text}*${crc8Atm(text).toString(16).padStart(2, '0')}`;
  };

  it.each<[string, string]>([
    ['t', 'syntax'],
    ['t=', 'syntax'],
    ['t=abc', 'syntax'],
    ['t=+1', 'syntax'],
    ['t=.5', 'syntax'],
    ['t=01', 'syntax'],
    ['t=NaN', 'syntax'],
    ['t=1e999', 'value'],
    ['_t=1', 'metric'],
    ['=1', 'metric'],
    [`${'m'.repeat(65)}=1`, 'metric'],
    ['t=1 t=2', 'duplicate'],
  ])('refuses the field %j as %s', (body, reason) => {
    expect(parseLine(signed(body))).toEqual({ kind: 'invalid', reason });
  });

  it('refuses to format what it could not parse', () => {
    const bad: ReadingValue[][] = [
      [],
      [['t', Number.NaN]],
      [['t', Number.POSITIVE_INFINITY]],
      [['bad name', 1]],
      [['t=', 1]],
      [
        ['t', 1],
        ['t', 2],
      ],
      Array.from({ length: 40 }, (_, i): ReadingValue => [`${'m'.repeat(60)}${i}`, i]),
    ];
    for (const values of bad) {
      expect(() => formatReading(values)).toThrow(ProtocolError);
    }
  });
});

describe('identity', () => {
  it('formats and parses ID? and ID', () => {
    expect(formatIdRequest()).toBe('ID?\n');
    expect(parseLine('ID?')).toEqual({ kind: 'id_request' });
    const line = formatId({ hardware: 'th-v2', serial: 'SN0001', version: '1.4.2+b7' });
    expect(line).toBe('ID th-v2 SN0001 1.4.2+b7\n');
    expect(parseLine(line)).toEqual({
      kind: 'id',
      hardware: 'th-v2',
      serial: 'SN0001',
      version: '1.4.2+b7',
    });
  });

  it.each(['ID? x', 'ID a b', 'ID a b c d', 'ID a b c*', 'ID a  b c'])('%j is syntax', (line) => {
    expect(parseLine(line)).toEqual({ kind: 'invalid', reason: 'syntax' });
  });

  it('refuses to format a token with a space', () => {
    expect(() => formatId({ hardware: 'a b', serial: 's', version: '1' })).toThrow(ProtocolError);
  });
});

describe('firmware update lines', () => {
  it('formats and parses BEGIN, END, OK, ERR', () => {
    expect(formatFwBegin(20480, SHA)).toBe(`FW BEGIN 20480 ${SHA}\n`);
    expect(parseLine(`FW BEGIN 20480 ${SHA.toUpperCase()}`)).toEqual({
      kind: 'fw_begin',
      size: 20480,
      sha256: SHA,
    });
    expect(formatFwEnd()).toBe('FW END\n');
    expect(parseLine('FW END')).toEqual({ kind: 'fw_end' });
    expect(formatOk(512)).toBe('OK 512\n');
    expect(parseLine('OK 512')).toEqual({ kind: 'ok', offset: 512 });
    expect(formatErr(512, 'crc')).toBe('ERR 512 crc\n');
    expect(parseLine('ERR 512 crc')).toEqual({ kind: 'err', offset: 512, reason: 'crc' });
  });

  it('checksums a chunk over its offset and data', () => {
    const line = formatFwChunk(0, new Uint8Array([0x00, 0x01, 0x02]));
    expect(crc8Atm(' 0 AAEC ')).toBe(0xc2);
    expect(line).toBe('FW CHUNK 0 AAEC *C2\n');
    expect(parseLine(line)).toEqual({
      kind: 'fw_chunk',
      offset: 0,
      data: new Uint8Array([0, 1, 2]),
    });
    // Same data at another offset: the old checksum no longer fits.
    expect(parseLine('FW CHUNK 3 AAEC *C2')).toEqual({ kind: 'invalid', reason: 'crc', offset: 3 });
  });

  it.each<[string, Record<string, unknown>]>([
    ['FW', { reason: 'syntax' }],
    ['FW BEGIN', { reason: 'syntax' }],
    [`FW BEGIN 0 ${SHA}`, { reason: 'syntax' }],
    ['FW BEGIN 10 abc', { reason: 'syntax' }],
    [`FW BEGIN 010 ${SHA}`, { reason: 'syntax' }],
    [`FW BEGIN 12345678901 ${SHA}`, { reason: 'syntax' }],
    ['FW END now', { reason: 'syntax' }],
    ['FW RESET', { reason: 'syntax' }],
    ['FW CHUNK 5 AAEC', { reason: 'syntax', offset: 5 }],
    ['FW CHUNK x AAEC *00', { reason: 'crc' }],
    ['OK', { reason: 'syntax' }],
    ['OK -1', { reason: 'syntax' }],
    ['ERR 1', { reason: 'syntax' }],
    ['ERR 1 Bad', { reason: 'syntax' }],
    ['ERR 1 crc extra', { reason: 'syntax' }],
  ])('%j is invalid', (line, expected) => {
    expect(parseLine(line)).toEqual({ kind: 'invalid', ...expected });
  });

  it('refuses a chunk with a good checksum but non-canonical or empty base64', () => {
    const signedChunk = (b64: string) => {
      const body = ` 7 ${b64} `;
      return `FW CHUNK${body}*${crc8Atm(body).toString(16).padStart(2, '0')}`;
    };
    expect(parseLine(signedChunk('AAE='))).toMatchObject({ kind: 'fw_chunk', offset: 7 });
    for (const b64 of ['AAF=', 'AA=', 'A===', '====', 'AA==AA==', 'AA-_']) {
      expect(parseLine(signedChunk(b64))).toEqual({ kind: 'invalid', reason: 'syntax', offset: 7 });
    }
    const tooBig = encodeBase64(new Uint8Array(MAX_FW_CHUNK_BYTES + 3));
    expect(parseLine(signedChunk(tooBig))).toEqual({
      kind: 'invalid',
      reason: 'syntax',
      offset: 7,
    });
  });

  it('refuses to build lines out of bounds', () => {
    expect(() => formatFwBegin(0, SHA)).toThrow(ProtocolError);
    expect(() => formatFwBegin(10, SHA.toUpperCase())).toThrow(ProtocolError);
    expect(() => formatFwChunk(-1, new Uint8Array(1))).toThrow(ProtocolError);
    expect(() => formatFwChunk(0, new Uint8Array(0))).toThrow(ProtocolError);
    expect(() => formatFwChunk(0, new Uint8Array(MAX_FW_CHUNK_BYTES + 1))).toThrow(ProtocolError);
    expect(() => formatOk(MAX_SERIAL_OFFSET + 1)).toThrow(ProtocolError);
    expect(() => formatOk(1.5)).toThrow(ProtocolError);
    expect(() => formatErr(0, 'Not Ok')).toThrow(ProtocolError);
  });

  it('keeps the largest chunk line within the line bound', () => {
    const line = formatFwChunk(MAX_SERIAL_OFFSET, new Uint8Array(MAX_FW_CHUNK_BYTES));
    expect(line.length - 1).toBeLessThanOrEqual(MAX_SERIAL_LINE_LENGTH);
  });
});

describe('LOG lines', () => {
  it('carry text, and name the version a failed health check reverted to', () => {
    expect(parseLine(formatLog('booting'))).toEqual({ kind: 'log', text: 'booting' });
    const line = formatHealthRevertLog('1.0.0');
    expect(line).toBe('LOG health check failed, reverted to 1.0.0\n');
    expect(parseLine(line)).toEqual({
      kind: 'log',
      text: 'health check failed, reverted to 1.0.0',
      revertedTo: '1.0.0',
    });
    expect(parseLine('LOG')).toEqual({ kind: 'invalid', reason: 'syntax' });
    expect(() => formatLog('')).toThrow(ProtocolError);
    expect(() => formatLog('tab\there')).toThrow(ProtocolError);
  });
});

describe('line-level refusals', () => {
  it.each<[string, string]>([
    ['', 'empty'],
    ['\n', 'empty'],
    ['\r\n', 'empty'],
    ['x'.repeat(MAX_SERIAL_LINE_LENGTH + 1), 'too_long'],
    ['R t=1 *00\u0000', 'charset'],
    ['R t=\u00e9 *00', 'charset'],
    ['R\tt=1 *00', 'charset'],
    ['HELLO', 'unknown'],
    ['r t=1 *00', 'unknown'],
    [' R t=1 *00', 'unknown'],
  ])('%j is %s', (line, reason) => {
    expect(parseLine(line)).toEqual({ kind: 'invalid', reason });
  });
});

describe('base64', () => {
  it('matches RFC 4648 test vectors and round-trips', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'Zg=='],
      ['fo', 'Zm8='],
      ['foo', 'Zm9v'],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of vectors) {
      expect(encodeBase64(bytes(plain))).toBe(encoded);
      expect(decodeBase64(encoded)).toEqual(bytes(plain));
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (data) => {
        const text = encodeBase64(data);
        expect(text).toBe(Buffer.from(data).toString('base64'));
        expect(decodeBase64(text)).toEqual(data);
      }),
    );
  });
});

describe('LineSplitter', () => {
  it('splits across chunks and leaves a partial line pending', () => {
    const splitter = new LineSplitter();
    expect(splitter.push(bytes('R t=1'))).toEqual([]);
    expect(splitter.partial).toBe(true);
    expect(splitter.push(bytes(' *00\r\nID?\nOK'))).toEqual(['R t=1 *00\r', 'ID?']);
    splitter.reset();
    expect(splitter.partial).toBe(false);
    expect(splitter.push(bytes(' 1\n'))).toEqual([' 1']);
  });

  it('bounds a line that never ends and resumes after its newline', () => {
    const splitter = new LineSplitter();
    expect(splitter.push(new Uint8Array(10_000).fill(0x41))).toEqual([]);
    const [long, next] = splitter.push(bytes('AAAA\nOK 1\n'));
    expect(long).toHaveLength(MAX_SERIAL_LINE_LENGTH + 1);
    expect(parseLine(long!)).toEqual({ kind: 'invalid', reason: 'too_long' });
    expect(next).toBe('OK 1');
  });

  it('maps bytes one to one, so non-ASCII is refused as charset', () => {
    const [line] = new LineSplitter().push(new Uint8Array([0x52, 0x20, 0xff, 0x0a]));
    expect(parseLine(line!)).toEqual({ kind: 'invalid', reason: 'charset' });
  });
});

describe('properties', () => {
  const metric = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
  const value = fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (v === 0 ? 0 : v));
  const values = fc.uniqueArray(fc.tuple(metric, value), {
    minLength: 1,
    maxLength: 8,
    selector: ([name]) => name,
  });
  const token = fc.stringMatching(/^[A-Za-z0-9._+-]{1,64}$/);

  it('format → parse returns the reading', () => {
    fc.assert(
      fc.property(values, (vs) => {
        expect(parseLine(formatReading(vs))).toEqual({ kind: 'reading', values: vs });
      }),
    );
  });

  it('format → parse returns every other line', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_SERIAL_OFFSET }),
        fc.uint8Array({ minLength: 1, maxLength: MAX_FW_CHUNK_BYTES }),
        token,
        token,
        token,
        (offset, data, hardware, serial, version) => {
          expect(parseLine(formatFwChunk(offset, data))).toEqual({
            kind: 'fw_chunk',
            offset,
            data,
          });
          expect(parseLine(formatId({ hardware, serial, version }))).toEqual({
            kind: 'id',
            hardware,
            serial,
            version,
          });
          expect(parseLine(formatOk(offset))).toEqual({ kind: 'ok', offset });
          expect(parseLine(formatHealthRevertLog(version))).toMatchObject({ revertedTo: version });
          if (offset > 0) {
            expect(parseLine(formatFwBegin(offset, SHA))).toEqual({
              kind: 'fw_begin',
              size: offset,
              sha256: SHA,
            });
          }
        },
      ),
    );
  });

  it('never throws on arbitrary text', () => {
    // Printable lines near the grammar, random code units, and lines around the length bound.
    const nearGrammar = fc
      .tuple(
        fc.constantFrom(
          'R ',
          'ID',
          'ID?',
          'FW BEGIN ',
          'FW CHUNK ',
          'FW END',
          'OK ',
          'ERR ',
          'LOG ',
        ),
        fc.string({ unit: fc.constantFrom(...'0123456789abcdefAF=*. +/-x\r') }),
      )
      .map(([head, tail]) => head + tail);
    const text = fc.oneof(
      nearGrammar,
      // Any UTF-16 code unit, lone surrogates included. (The 'binary' unit of fast-check
      // takes most of a second to build, too slow on a busy CI machine.)
      fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
      fc.nat({ max: 64 }).map((n) => 'R'.repeat(MAX_SERIAL_LINE_LENGTH - 32 + n)),
    );
    fc.assert(
      fc.property(text, (s) => {
        expect(typeof parseLine(s).kind).toBe('string');
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a reading with any one character changed', () => {
    fc.assert(
      fc.property(values, fc.nat(), fc.integer({ min: 0x20, max: 0x7e }), (vs, at, code) => {
        const line = formatReading(vs).slice(0, -1);
        const i = at % line.length;
        const changed = line.slice(0, i) + String.fromCharCode(code) + line.slice(i + 1);
        if (changed === line) return;
        const parsed = parseLine(changed);
        // CRC-8 detects every error burst of up to 8 bits, so any changed byte is caught;
        // only rewriting a checksum digit in the other case reads the same.
        if (parsed.kind !== 'invalid') {
          expect(i).toBeGreaterThanOrEqual(line.length - 2);
          expect(parsed).toEqual({ kind: 'reading', values: vs });
        }
      }),
      { numRuns: 2000 },
    );
  });
});
