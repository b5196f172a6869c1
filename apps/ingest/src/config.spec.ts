import { describe, expect, it } from 'vitest';
import { loadConfig, redactedConfig } from './config.js';
import { ConfigInvalid } from './errors.js';

describe('loadConfig', () => {
  it('runs on embedded defaults with no configuration at all', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      http: { port: 8080, host: '0.0.0.0' },
      mqtt: { port: 1883, tlsPort: 8883 },
      influx: undefined,
      databaseUrl: undefined,
      audience: 'outpost',
    });
    expect(Object.isFrozen(c.limits)).toBe(true);
  });

  it('lists every bad variable at once', () => {
    try {
      loadConfig({
        INGEST_HTTP_PORT: 'x',
        INGEST_INFLUX_URL: 'not a url',
        INGEST_LOG_LEVEL: 'loud',
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigInvalid);
      const problems = (err as ConfigInvalid).problems.join('\n');
      expect(problems).toMatch(/INGEST_HTTP_PORT/);
      expect(problems).toMatch(/INGEST_INFLUX_URL/);
      expect(problems).toMatch(/INGEST_LOG_LEVEL/);
    }
  });

  it('refuses an InfluxDB target without its bucket or database, and a lone TLS file', () => {
    expect(() => loadConfig({ INGEST_INFLUX_URL: 'http://127.0.0.1:8086' })).toThrow(
      /INGEST_INFLUX_BUCKET/,
    );
    expect(() =>
      loadConfig({ INGEST_INFLUX_URL: 'http://127.0.0.1:8086', INGEST_INFLUX_API: 'v1' }),
    ).toThrow(/INGEST_INFLUX_DATABASE/);
    expect(() => loadConfig({ INGEST_MQTT_TLS_CERT: '/x.pem' })).toThrow(/set both or neither/);
  });

  it('refuses cluster mode (INGEST_REDIS_URL) without a shared PostgreSQL registry', () => {
    expect(() => loadConfig({ INGEST_REDIS_URL: 'redis://127.0.0.1:6379' })).toThrow(
      /INGEST_REDIS_URL: cluster mode needs a shared PostgreSQL registry/,
    );
    const c = loadConfig({
      INGEST_REDIS_URL: 'redis://127.0.0.1:6379',
      INGEST_DATABASE_URL: 'postgres://outpost@127.0.0.1:5432/outpost',
    });
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(() => loadConfig({ INGEST_REDIS_URL: 'http://127.0.0.1:6379' })).toThrow(
      /must be a redis:\/\/ URL/,
    );
  });

  it('names the replica from the environment, else from the host name and process id', () => {
    const identity = { hostname: 'node a/ü.example', pid: 42 };
    expect(loadConfig({}, identity).replicaId).toBe('node-a--.example-42');
    expect(loadConfig({ INGEST_REPLICA_ID: 'ingest-2' }, identity).replicaId).toBe('ingest-2');
    expect(() => loadConfig({ INGEST_REPLICA_ID: 'a b' })).toThrow(/INGEST_REPLICA_ID/);
    expect(() => loadConfig({ INGEST_REPLICA_ID: 'x'.repeat(65) })).toThrow(/INGEST_REPLICA_ID/);
  });

  it('redacts secrets and URL passwords for the startup log', () => {
    const c = loadConfig({
      INGEST_BOOTSTRAP_TOKEN: 'a-very-secret-bootstrap-token-1234',
      INGEST_DATABASE_URL: 'postgres://outpost:hunter2@db:5432/outpost',
      INGEST_INFLUX_URL: 'http://influx:8086',
      INGEST_INFLUX_BUCKET: 'b',
      INGEST_INFLUX_TOKEN: 'influx-secret',
      INGEST_REDIS_URL: 'redis://:redis-secret@redis:6379/0',
    });
    const shown = JSON.stringify(redactedConfig(c));
    expect(shown).not.toContain('a-very-secret');
    expect(shown).not.toContain('hunter2');
    expect(shown).not.toContain('influx-secret');
    expect(shown).not.toContain('redis-secret');
    expect(shown).toContain('redis://:[redacted]@redis:6379/0');
  });
});
