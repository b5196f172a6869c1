import { crc8Atm, formatReading, LineSplitter, parseLine } from '@outpost/protocol/serial-line';
import { describe, expect, it } from 'vitest';
import { badCrcLine, garbageLine, partialLine } from './line-faults.js';
import { mulberry32 } from './random.js';

const values = [
  ['t', 21.5],
  ['h', 40],
] as const;

describe('reading checksums (CRC-8/ATM over the text between R and *)', () => {
  it('the simulator writes the checksum the parser expects', () => {
    const line = formatReading(values);
    expect(line).toBe('R t=21.5 h=40 *29\n');
    expect(crc8Atm(' t=21.5 h=40 ')).toBe(0x29);
    expect(parseLine(line)).toEqual({ kind: 'reading', values });
  });
});

describe('broken lines', () => {
  const random = mulberry32(1);

  it('badCrcLine keeps the text and changes only the checksum', () => {
    for (let i = 0; i < 500; i++) {
      const line = badCrcLine(values, random);
      expect(line.slice(0, -3)).toBe(formatReading(values).slice(0, -3));
      expect(parseLine(line)).toEqual({ kind: 'invalid', reason: 'crc' });
    }
  });

  it('partialLine is a reading cut before its checksum, ended by a newline', () => {
    for (let i = 0; i < 500; i++) {
      const line = partialLine(values, random);
      expect(formatReading(values).startsWith(line.slice(0, -1))).toBe(true);
      expect(line.endsWith('\n')).toBe(true);
      expect(parseLine(line).kind).toBe('invalid');
    }
  });

  it('garbageLine is exactly one line that never parses', () => {
    for (let i = 0; i < 500; i++) {
      const bytes = garbageLine(random);
      const lines = new LineSplitter().push(bytes);
      expect(lines).toHaveLength(1);
      expect(parseLine(lines[0]!)).toMatchObject({ kind: 'invalid' });
    }
  });
});
