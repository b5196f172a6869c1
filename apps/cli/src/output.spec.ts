import { describe, expect, it } from 'vitest';
import {
  formatAge,
  formatTags,
  formatTime,
  Output,
  renderKeyValue,
  renderTable,
  type TextSink,
} from './output.js';

function sink(isTTY = false): TextSink & { text: string } {
  return {
    text: '',
    isTTY,
    write(chunk: string) {
      this.text += chunk;
    },
  };
}

describe('renderTable', () => {
  const rows: { id: string; tags: Record<string, string> }[] = [
    { id: 'boiler-7', tags: { site: 'berlin', line: '2' } },
    { id: 'gw-1', tags: {} },
  ];
  const columns = [
    { header: 'id', value: (r: (typeof rows)[number]) => r.id },
    { header: 'tags', value: (r: (typeof rows)[number]) => formatTags(r.tags) },
  ];

  it('aligns columns under upper-case headers, without borders or trailing spaces', () => {
    expect(renderTable(rows, columns)).toBe(
      ['ID        TAGS', 'boiler-7  line=2,site=berlin', 'gw-1'].join('\n'),
    );
  });

  it('keeps each row on one line and strips terminal escapes from cells', () => {
    const text = renderTable([{ id: 'a\nb\u001b[31m', tags: {} }], columns);
    expect(text.split('\n')).toHaveLength(2);
    expect(text).not.toContain('\u001b');
  });
});

describe('renderKeyValue', () => {
  it('aligns values after the longest key', () => {
    expect(
      renderKeyValue([
        ['id', 'boiler-7'],
        ['last seen', 'never'],
      ]),
    ).toBe('id:        boiler-7\nlast seen: never');
  });
});

describe('times', () => {
  const now = Date.parse('2025-01-01T12:00:00Z');

  it.each([
    [null, 'never'],
    ['2025-01-01T11:59:48Z', '12s ago'],
    ['2025-01-01T11:55:00Z', '5m ago'],
    ['2025-01-01T09:00:00Z', '3h ago'],
    ['2024-12-30T12:00:00Z', '2d ago'],
    ['2025-01-01T12:00:05Z', 'just now'],
    ['not a time', '-'],
  ])('formatAge(%j) is %j', (at, text) => {
    expect(formatAge(at, now)).toBe(text);
  });

  it('formats an absolute time to the second with its age', () => {
    expect(formatTime('2025-01-01T11:55:00.123Z', now)).toBe('2025-01-01T11:55:00Z (5m ago)');
    expect(formatTime(Date.parse('2025-01-02T12:00:00Z'), now)).toBe('2025-01-02T12:00:00Z');
    expect(formatTime(null, now)).toBe('-');
  });
});

describe('Output', () => {
  it('prints the value as JSON with --json and never calls the text renderer', () => {
    const stdout = sink();
    new Output(stdout, sink(), true).result({ a: 1 }, () => {
      throw new Error('not in JSON mode');
    });
    expect(JSON.parse(stdout.text)).toEqual({ a: 1 });
  });

  it('prints text otherwise', () => {
    const stdout = sink();
    new Output(stdout, sink(), false).result({ a: 1 }, () => 'a is 1');
    expect(stdout.text).toBe('a is 1\n');
  });

  it('keeps notes out of JSON output and on stderr', () => {
    const stderr = sink();
    new Output(sink(), stderr, true).note('hello');
    expect(stderr.text).toBe('');
    new Output(sink(), stderr, false).note('hello');
    expect(stderr.text).toBe('hello\n');
  });

  it('draws progress only on a terminal', () => {
    const pipe = sink(false);
    new Output(sink(), pipe, false).progress('50%');
    expect(pipe.text).toBe('');
    const tty = sink(true);
    const out = new Output(sink(), tty, false);
    out.progress('50%');
    out.progressDone();
    expect(tty.text).toContain('50%');
    expect(tty.text.endsWith('\r\u001b[2K')).toBe(true);
  });
});
