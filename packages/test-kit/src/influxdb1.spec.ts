import { describe, expect, it } from 'vitest';
import { influxConfig } from './influxdb1.js';

describe('influxConfig', () => {
  it('keeps both listeners on 127.0.0.1 and all state under the work dir', () => {
    const config = influxConfig('/w/influx', 18086, 18088);
    expect(config).toContain('bind-address = "127.0.0.1:18088"');
    expect(config).toContain('[http]\n  bind-address = "127.0.0.1:18086"');
    expect(config).toContain('dir = "/w/influx/meta"');
    expect(config).toContain('wal-dir = "/w/influx/wal"');
    expect(config).toContain('reporting-disabled = true');
    expect(config).toContain('[monitor]\n  store-enabled = false');
    expect(config).not.toMatch(/\/var\/lib|:8086"|:8088"/);
  });
});
