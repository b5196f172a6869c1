import { describe, expect, it } from 'vitest';
import { parseExport } from './victoria-metrics.js';

describe('parseExport', () => {
  it('reads one series per JSON line and skips blank lines', () => {
    const body = [
      '{"metric":{"__name__":"t_c","device":"a"},"values":[1.5],"timestamps":[1000]}',
      '',
      '{"metric":{"__name__":"t_c","device":"b"},"values":[2,3],"timestamps":[1000,2000]}',
      '',
    ].join('\n');
    expect(parseExport(body)).toEqual([
      { metric: { __name__: 't_c', device: 'a' }, values: [1.5], timestamps: [1000] },
      { metric: { __name__: 't_c', device: 'b' }, values: [2, 3], timestamps: [1000, 2000] },
    ]);
    expect(parseExport('')).toEqual([]);
  });
});
