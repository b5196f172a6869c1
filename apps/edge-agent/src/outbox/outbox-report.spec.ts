import { describe, expect, it } from 'vitest';
import { type OutboxStats, zeroCounters } from './outbox.js';
import { formatOutboxReport, outboxReport, uplinkFromMetrics } from './outbox-report.js';

const NOW = Date.UTC(2025, 5, 1, 12);
const stats = (over: Partial<OutboxStats> = {}): OutboxStats => ({
  pending: 4,
  records: 20_000,
  bytes: 3 * 2 ** 20,
  oldestMs: NOW - 3 * 3600_000,
  quarantined: 1,
  quarantinedRecords: 500,
  maxBytes: 512 * 2 ** 20,
  whenFull: 'drop-oldest',
  counters: {
    ...zeroCounters(),
    appendedRecords: 30_000,
    ackedRecords: 9_500,
    quarantinedRecords: 500,
    requeuedRecords: 300,
  },
  ...over,
});

describe('outpost-agent outbox', () => {
  it('gives the drain ETA from the running agent’s drain rate', () => {
    const r = outboxReport(stats(), { connected: true, drainRate: 4000 }, [], NOW);
    expect(r).toMatchObject({ etaS: 5, agent: 'running', uplink: 'connected', oldestAgeS: 10_800 });
    const text = formatOutboxReport(r);
    expect(text).toContain(
      'pending      20,000 records in 4 batches, 3.0 MiB of 512.0 MiB (when full: drop-oldest)',
    );
    expect(text).toContain('oldest       3h 0m ago');
    expect(text).toContain('drain ETA    5.0 s');
    expect(text).toContain('500 quarantined, 300 re-queued from split refusals');
  });

  it.each([
    [undefined, 'the agent is not running'],
    [{ connected: false, drainRate: 0 }, 'the uplink is offline'],
    [{ connected: true, drainRate: 0 }, 'nothing drained in the last seconds'],
  ])('says why the ETA is unknown (%o)', (uplink, reason) => {
    const r = outboxReport(stats(), uplink, [], NOW);
    expect(r.etaS).toBeUndefined();
    expect(r.etaReason).toBe(reason);
    expect(formatOutboxReport(r)).toContain(`drain ETA    unknown (${reason})`);
  });

  it('is 0 for an empty outbox whatever the uplink does', () => {
    expect(
      outboxReport(stats({ records: 0, pending: 0, oldestMs: undefined }), undefined, [], NOW).etaS,
    ).toBe(0);
  });

  it('lists the latest quarantined batches with their reason', () => {
    const r = outboxReport(
      stats(),
      undefined,
      [
        {
          id: 1,
          boot: 'bootQ0001',
          seq: [10, 19],
          createdMs: NOW - 1000,
          quarantinedMs: NOW,
          records: 10,
          bytes: 300,
          reason: 'not_child',
          detail: 'not a child of gw-1: stranger-1',
          pack: '[]',
        },
      ],
      NOW,
    );
    expect(formatOutboxReport(r)).toContain(
      'quarantined 2025-06-01T12:00:00.000Z boot bootQ0001 seq 10-19 (10 records): not_child — not a child of gw-1: stranger-1',
    );
  });

  it('reads the uplink gauges from the agent’s metrics', () => {
    const text = [
      '# HELP outpost_agent_uplink_connected x',
      'outpost_agent_uplink_connected 1',
      'outpost_agent_uplink_drain_rate_records_per_second 1234.5',
    ].join('\n');
    expect(uplinkFromMetrics(text)).toEqual({ connected: true, drainRate: 1234.5 });
    expect(uplinkFromMetrics('nothing here')).toBeUndefined();
  });
});
