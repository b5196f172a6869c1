import { describe, expect, it } from 'vitest';
import {
  formatAge,
  formatBytes,
  formatTags,
  formatTime,
  Output,
  progressBar,
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

describe('frame (watch views)', () => {
  it('redraws over the previous frame on a terminal', () => {
    const tty = sink(true);
    const out = new Output(tty, sink(), false);
    out.frame({}, () => 'a\nb');
    out.frame({}, () => 'c');
    expect(tty.text).toBe('a\nb\n\u001b[2F\u001b[Jc\n');
    expect(out.interactive).toBe(true);
  });

  it('prints each frame below the last in a pipe, and JSON lines with --json', () => {
    const pipe = sink(false);
    const out = new Output(pipe, sink(), false);
    out.frame({}, () => 'one');
    out.frame({}, () => 'two');
    expect(pipe.text).toBe('one\ntwo\n');
    expect(out.interactive).toBe(false);
    const json = sink(true);
    const scripted = new Output(json, sink(), true);
    scripted.frame({ n: 1 }, () => 'ignored');
    scripted.frame({ n: 2 }, () => 'ignored');
    expect(json.text).toBe('{"n":1}\n{"n":2}\n');
    expect(scripted.interactive).toBe(false);
  });
});

describe('progressBar and formatBytes', () => {
  it('draws a bar of the fraction done', () => {
    expect(progressBar(0, 10)).toBe('[..........]');
    expect(progressBar(0.5, 10)).toBe('[#####.....]');
    expect(progressBar(1.5, 4)).toBe('[####]');
  });

  it('speaks binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
  });
});
