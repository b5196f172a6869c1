import { describe, expect, it } from 'vitest';
import { mergePatch, patchRuleSchema, ruleInputOf, ruleInputSchema } from './alert-schemas.js';

// Unit: the HTTP shapes of rules, parsed with zod. Nothing mocked.

describe('rule input', () => {
  it('defaults to a threshold rule, parses durations and fills the defaults', () => {
    expect(ruleInputSchema.parse({ metric: 'temperature', above: 90, for: '30s' })).toEqual({
      name: undefined,
      enabled: true,
      spec: {
        kind: 'threshold',
        metric: 'temperature',
        above: 90,
        forMs: 30_000,
        clearForMs: 0,
        scope: {},
        severity: 'warning',
        channels: [{ type: 'log' }],
        backfill: 'record',
        flap: { fires: 3, windowMs: 900_000 },
      },
    });
    expect(ruleInputSchema.parse({ metric: 'x', above: 1, for: 45 }).spec).toMatchObject({
      forMs: 45_000,
    });
  });

  it('parses an offline rule', () => {
    expect(
      ruleInputSchema.parse({ kind: 'offline', after: '5m', scope: { tags: { site: 'b' } } }).spec,
    ).toEqual({
      kind: 'offline',
      afterMs: 300_000,
      scope: { tags: { site: 'b' } },
      severity: 'warning',
      channels: [{ type: 'log' }],
    });
  });

  it.each([
    [{ metric: 'x', above: 1, for: 'soon' }, 'for'],
    [{ metric: 'x', above: 1, for: '9d' }, 'for'],
    [{ metric: 'bad metric', above: 1 }, 'metric'],
    [{ metric: 'x', above: Number.NaN }, 'above'],
    [{ metric: 'x', above: 1, channels: [{ type: 'webhook', url: 'ftp://a/b' }] }, 'channels'],
    [
      { metric: 'x', above: 1, channels: [{ type: 'webhook', url: 'https://u:p@a/b' }] },
      'channels',
    ],
    [{ metric: 'x', above: 1, channels: [{ type: 'sms' }] }, 'channels'],
    [{ metric: 'x', above: 1, scope: { devices: ['Bad_Id'] } }, 'scope'],
    [{ metric: 'x', above: 1, surprise: true }, ''],
    [{ kind: 'offline', after: '5m', metric: 'x' }, ''],
    [{ kind: 'offline', after: '1s' }, 'after'],
    [{ metric: 'x', above: 1, flap: { fires: 1, window: '1m' } }, 'flap'],
  ])('refuses %j', (input, path) => {
    const result = ruleInputSchema.safeParse(input);
    expect(result.success).toBe(false);
    if (path) expect(result.error!.issues.map((i) => i.path[0])).toContain(path);
  });
});

describe('rule patches', () => {
  it('reads back what it shows, and merges a patch where null removes a field', () => {
    const parsed = ruleInputSchema.parse({
      metric: 'temperature',
      above: 90,
      clearBelow: 85,
      for: '90s',
      rate: '1m',
      channels: [{ type: 'webhook', url: 'https://hooks.example/x' }],
    });
    const shown = ruleInputOf(parsed.spec);
    expect(shown).toMatchObject({
      for: '90s',
      clearFor: '0s',
      rate: '1m',
      flap: { window: '15m' },
    });
    expect(ruleInputSchema.parse(shown).spec).toEqual(parsed.spec);

    const patch = patchRuleSchema.parse({ clearBelow: null, rate: null, flap: null, above: 95 });
    const merged = ruleInputSchema.parse(mergePatch(shown, patch)).spec;
    expect(merged).toMatchObject({ above: 95, flap: null });
    expect(merged).not.toHaveProperty('clearBelow');
    expect(merged).not.toHaveProperty('rateMs');
  });

  it('refuses an empty patch and unknown fields', () => {
    expect(patchRuleSchema.safeParse({}).success).toBe(false);
    expect(patchRuleSchema.safeParse({ kind: 'offline' }).success).toBe(false);
  });
});
