import { describe, expect, it } from 'vitest';
import { planImport } from './device-import.js';

const header = 'id,kind,name,gateway,tags';

describe('planImport', () => {
  it('reads CSV with tags, tag.<key> columns and gateways defined in the file', () => {
    const plan = planImport(
      {
        csv: `id,kind,name,gateway,tags,tag.floor\ngw-1,gateway,Gate,,site=north,1\ns-1,device,"Boiler, 7",gw-1,site=north;line=a,2\n`,
      },
      100,
    );
    expect(plan).toMatchObject({
      ok: true,
      gatewaysToCheck: [],
      devices: [
        {
          id: 'gw-1',
          kind: 'gateway',
          name: 'Gate',
          gateway: null,
          tags: { site: 'north', floor: '1' },
        },
        {
          id: 's-1',
          kind: 'device',
          name: 'Boiler, 7',
          gateway: 'gw-1',
          tags: { site: 'north', line: 'a', floor: '2' },
        },
      ],
    });
  });

  it('names the one bad row among 10,000 and plans nothing', () => {
    const lines = [header];
    for (let i = 0; i < 10_000; i++) lines.push(`dev-${i},device,,,site=s${i % 7}`);
    lines[5_001] = 'Dev_BAD,device,,,site=x';
    const plan = planImport({ csv: lines.join('\n') }, 100_000);
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.errorCount).toBe(1);
    expect(plan.errors[0]).toMatchObject({ line: 5_002, id: 'Dev_BAD' });
    expect(plan.errors[0]!.message).toMatch(/^id: device id must match/);
  });

  it.each([
    ['duplicate ids', `${header}\na,device,,,\na,device,,,`, /duplicate id \(also on line 2\)/],
    ['bad kind', `${header}\na,toaster,,,`, /kind/],
    ['bad tag pair', `${header}\na,device,,,site`, /not key=value/],
    ['hostile tag key', `${header}\na,device,,,"x' OR '1'='1=1"`, /tag keys/],
    ['control characters', `${header}\na,device,"bad\u0007name",,`, /control characters/],
    ['own gateway', `${header}\na,device,,a,`, /its own gateway/],
    ['gateway not a gateway', `${header}\ng,device,,,\na,device,,g,`, /not of kind gateway/],
    ['unknown column', 'id,colour\na,red', /unknown column/],
    ['no id column', 'kind\ndevice', /"id" column/],
    ['empty', header, /no devices/],
    ['unbalanced quote', `${header}\n"a,device,,,`, /CSV/],
  ])('refuses %s with a reason', (_name, csv, message) => {
    const plan = planImport({ csv }, 100);
    expect(plan.ok).toBe(false);
    if (!plan.ok) expect(plan.errors.map((e) => e.message).join('\n')).toMatch(message);
  });

  it('accepts JSON arrays and {devices} and lists unknown gateways to check', () => {
    const plan = planImport(
      { json: { devices: [{ id: 'a', gateway: 'gw-9', tags: { k: 'v' } }] } },
      100,
    );
    expect(plan).toMatchObject({ ok: true, gatewaysToCheck: ['gw-9'] });
    const bad = planImport({ json: [{ id: 'a', extra: 1 }] }, 100);
    expect(bad.ok).toBe(false);
    expect(planImport({ json: 'nope' }, 100).ok).toBe(false);
  });

  it('enforces the row limit', () => {
    const plan = planImport({ json: [{ id: 'a' }, { id: 'b' }] }, 1);
    expect(plan.ok).toBe(false);
  });
});
