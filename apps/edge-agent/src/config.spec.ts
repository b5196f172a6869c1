import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  applyRemoteConfig,
  ConfigInvalid,
  configJsonSchema,
  configPathOf,
  envName,
  parseConfig,
  parseSize,
  remoteConfigSchema,
} from './config.js';

const DEPLOY = new URL('../../../deploy/edge/', import.meta.url);

function problemsOf(text: string, env: Record<string, string> = {}) {
  try {
    parseConfig(text, 'agent.yaml', { env });
  } catch (err) {
    if (err instanceof ConfigInvalid)
      return err.problems.map((p) => `${p.where} ${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

describe('agent.yaml', () => {
  it('fills every default, parses sizes and durations, and freezes the result', () => {
    const config = parseConfig('sources: []\n');
    expect(config).toMatchObject({
      dataDir: '/var/lib/outpost-agent',
      outbox: { maxBytes: 512 * 2 ** 20, whenFull: 'drop-oldest', sync: 'full' },
      uplink: {
        window: 16,
        backfillAfter: 10_000,
        tokenLifetime: 3_600_000,
        http: { fallback: true },
      },
      metrics: { listen: '127.0.0.1:9464' },
      state: { every: 60_000 },
      batch: { maxRecords: 500, maxAge: 2000 },
      pipeline: [],
    });
    expect(Object.isFrozen(config.outbox)).toBe(true);
  });

  it.each([
    ['512MiB', 512 * 2 ** 20],
    ['64KiB', 65_536],
    ['1GB', 1e9],
    ['1.5MiB', 1.5 * 2 ** 20],
    ['4096', 4096],
    ['12 parsecs', undefined],
  ])('reads the size %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it('lists every problem at once, in file order, with line and column', () => {
    const text = [
      'dataDir: 5', //                         1
      'outbox:', //                            2
      '  maxBytes: lots', //                   3
      '  whenFull: maybe', //                  4
      '  colour: blue', //                     5
      'sources:', //                           6
      '  - serial: { port: /dev/ttyUSB0 }', // 7
      'state: { every: 2m }', //               8
    ].join('\n');
    expect(problemsOf(text)).toEqual([
      'agent.yaml:1:10 dataDir: Invalid input: expected string, received number',
      'agent.yaml:3:13 outbox.maxBytes: expected a size such as 512MiB, 64KiB or 1GB',
      'agent.yaml:4:13 outbox.whenFull: Invalid option: expected one of "drop-oldest"|"reject-new"|"downsample-oldest"',
      'agent.yaml:5:3 outbox: unknown key colour',
      'agent.yaml:7:13 sources[0].serial.device: required',
      'agent.yaml:8:17 state.every: at most 60s',
    ]);
  });

  it('reports YAML syntax errors with their place', () => {
    expect(problemsOf('sources: [1\n')).toEqual([expect.stringMatching(/^agent\.yaml:2:1 : /)]);
    expect(problemsOf('- a\n- b\n')).toEqual(['agent.yaml:1:1 : expected a mapping of keys']);
  });

  it('takes AGENT_* overrides for the same keys, and names the variable in a problem', () => {
    const config = parseConfig('outbox: { maxBytes: 1MiB }\n', 'agent.yaml', {
      env: {
        AGENT_OUTBOX_MAX_BYTES: '2GiB',
        AGENT_OUTBOX_WHEN_FULL: 'downsample-oldest',
        AGENT_DATA_DIR: '/data',
        AGENT_SERVER: 'https://ingest.example:8080',
        AGENT_UPLINK_HTTP_FALLBACK: 'false',
        AGENT_METRICS_LISTEN: 'false',
        AGENT_NAME: 'a CI runner variable, not ours',
      },
    });
    expect(config).toMatchObject({
      dataDir: '/data',
      server: 'https://ingest.example:8080',
      outbox: { maxBytes: 2 * 2 ** 30, whenFull: 'downsample-oldest' },
      uplink: { http: { fallback: false } },
      metrics: { listen: false },
    });
    expect(problemsOf('', { AGENT_UPLINK_WINDOW: 'many', AGENT_STATE_EVERY: '5m' })).toEqual([
      'AGENT_UPLINK_WINDOW uplink.window: Invalid input: expected number, received string',
      'AGENT_STATE_EVERY state.every: at most 60s',
    ]);
    expect(envName('outbox.quarantineMaxBytes')).toBe('AGENT_OUTBOX_QUARANTINE_MAX_BYTES');
    expect(configPathOf(undefined, { AGENT_CONFIG: '/tmp/a.yaml' })).toBe('/tmp/a.yaml');
    expect(configPathOf('/x.yaml', { AGENT_CONFIG: '/tmp/a.yaml' })).toBe('/x.yaml');
  });

  it('accepts the example in deploy/edge and the JSON Schema there is the current one', () => {
    const example = readFileSync(new URL('agent.yaml', DEPLOY), 'utf8');
    const config = parseConfig(example);
    expect(config.sources).toHaveLength(3);
    const committed = JSON.parse(readFileSync(new URL('agent.schema.json', DEPLOY), 'utf8'));
    // Regenerate with `npm run schema -w @outpost/edge-agent` after changing a config schema.
    expect(committed).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
  });

  it('applies a remote configuration over the file, key by key', () => {
    const base = parseConfig('outbox: { maxBytes: 1MiB, sync: normal }\nstate: { every: 30s }\n');
    const remote = remoteConfigSchema.parse({
      outbox: { whenFull: 'reject-new' },
      batch: { maxRecords: 50 },
    });
    const next = applyRemoteConfig(base, remote);
    expect(next.outbox).toMatchObject({
      maxBytes: 2 ** 20,
      sync: 'normal',
      whenFull: 'reject-new',
    });
    expect(next.batch.maxRecords).toBe(50);
    expect(next.state.every).toBe(30_000);
    expect(remoteConfigSchema.safeParse({ dataDir: '/elsewhere' }).success).toBe(false);
  });
});
