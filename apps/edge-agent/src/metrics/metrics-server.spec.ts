import { describe, expect, it } from 'vitest';
import { AgentMetrics } from './agent-metrics.js';
import { closeServer, isLoopback, parseListen, startMetricsServer } from './metrics-server.js';

describe('metrics endpoint', () => {
  it('parses listen addresses and knows loopback ones', () => {
    expect(parseListen('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListen('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseListen('localhost:70000')).toBeUndefined();
    expect(parseListen('nonsense')).toBeUndefined();
    expect(['127.0.0.1', '::1', 'localhost', '0.0.0.0', '10.0.0.1'].map(isLoopback)).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
  });

  it('serves the Prometheus text on GET /metrics and nothing else', async () => {
    const metrics = new AgentMetrics();
    metrics.readings.inc({ outcome: 'outboxed' }, 3);
    metrics.observe('outpost_agent_test_gauge', 'a gauge read at scrape time', () => 42);
    const server = await startMetricsServer(metrics.registry, { host: '127.0.0.1', port: 0 });
    const { port } = server.address() as { port: number };
    try {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const text = await res.text();
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(text).toContain('outpost_agent_readings_total{outcome="outboxed"} 3');
      expect(text).toContain('outpost_agent_test_gauge 42');
      expect(text).toContain('outpost_agent_process_resident_memory_bytes');
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(
        405,
      );
    } finally {
      await closeServer(server);
    }
  });
});
