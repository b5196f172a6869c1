import type { OutboxStats, QuarantinedBatch } from './outbox.js';

/**
 * What `outpost-agent outbox` prints. Pure: the outbox's stats, and what the running agent's
 * metrics endpoint says about the uplink (undefined when the agent does not answer).
 */
export interface UplinkView {
  connected: boolean;
  /** Acknowledged records per second, smoothed. */
  drainRate: number;
}

export interface OutboxReport {
  pending: { batches: number; records: number; bytes: number; maxBytes: number };
  whenFull: string;
  oldestAgeS: number | undefined;
  quarantined: { batches: number; records: number };
  agent: 'running' | 'not running';
  uplink: 'connected' | 'offline' | 'unknown';
  drainRate: number | undefined;
  /** Seconds until the outbox is empty at the current drain rate; undefined when unknown. */
  etaS: number | undefined;
  etaReason: string | undefined;
  counters: OutboxStats['counters'];
  recentQuarantine: {
    boot: string;
    seq: readonly [number, number];
    records: number;
    reason: string;
    detail: string | undefined;
    at: string;
  }[];
}

export function outboxReport(
  stats: OutboxStats,
  uplink: UplinkView | undefined,
  quarantine: readonly QuarantinedBatch[],
  nowMs: number,
): OutboxReport {
  let etaS: number | undefined;
  let etaReason: string | undefined;
  if (stats.records === 0) etaS = 0;
  else if (uplink === undefined) etaReason = 'the agent is not running';
  else if (!uplink.connected) etaReason = 'the uplink is offline';
  else if (uplink.drainRate <= 0) etaReason = 'nothing drained in the last seconds';
  else etaS = stats.records / uplink.drainRate;
  return {
    pending: {
      batches: stats.pending,
      records: stats.records,
      bytes: stats.bytes,
      maxBytes: stats.maxBytes,
    },
    whenFull: stats.whenFull,
    oldestAgeS:
      stats.oldestMs === undefined ? undefined : Math.max(0, (nowMs - stats.oldestMs) / 1000),
    quarantined: { batches: stats.quarantined, records: stats.quarantinedRecords },
    agent: uplink === undefined ? 'not running' : 'running',
    uplink: uplink === undefined ? 'unknown' : uplink.connected ? 'connected' : 'offline',
    drainRate: uplink?.drainRate,
    etaS,
    etaReason,
    counters: stats.counters,
    recentQuarantine: quarantine.map((q) => ({
      boot: q.boot,
      seq: q.seq,
      records: q.records,
      reason: q.reason,
      detail: q.detail,
      at: new Date(q.quarantinedMs).toISOString(),
    })),
  };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const s = Math.round(seconds);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${s % 60}s`;
}

export function formatOutboxReport(r: OutboxReport): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const c = r.counters;
  const lines = [
    `pending      ${n(r.pending.records)} records in ${n(r.pending.batches)} batches, ${formatBytes(r.pending.bytes)} of ${formatBytes(r.pending.maxBytes)} (when full: ${r.whenFull})`,
    `oldest       ${r.oldestAgeS === undefined ? '-' : `${formatDuration(r.oldestAgeS)} ago`}`,
    `quarantined  ${n(r.quarantined.records)} records in ${n(r.quarantined.batches)} batches`,
    `agent        ${r.agent}, uplink ${r.uplink}${r.drainRate === undefined ? '' : `, draining ${n(Math.round(r.drainRate))} records/s`}`,
    `drain ETA    ${r.etaS === undefined ? `unknown (${r.etaReason})` : r.etaS === 0 ? 'none (nothing pending)' : formatDuration(r.etaS)}`,
    `since created: ${n(c.appendedRecords)} appended, ${n(c.ackedRecords)} acknowledged, ${n(c.droppedRecords)} dropped, ${n(c.rejectedRecords)} refused when full, ${n(c.downsampledRecords)} downsampled into ${n(c.aggregateRecords)}, ${n(c.quarantinedRecords)} quarantined, ${n(c.requeuedRecords)} re-queued from split refusals`,
  ];
  for (const q of r.recentQuarantine) {
    lines.push(
      `  quarantined ${q.at} boot ${q.boot} seq ${q.seq[0]}-${q.seq[1]} (${q.records} records): ${q.reason}${q.detail ? ` — ${q.detail}` : ''}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Reads the uplink gauges out of the agent's Prometheus text. */
export function uplinkFromMetrics(text: string): UplinkView | undefined {
  const value = (name: string): number | undefined => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+|NaN)$`, 'm').exec(text);
    return m === null ? undefined : Number(m[1]);
  };
  const connected = value('outpost_agent_uplink_connected');
  const rate = value('outpost_agent_uplink_drain_rate_records_per_second');
  if (connected === undefined) return undefined;
  return {
    connected: connected === 1,
    drainRate: rate !== undefined && Number.isFinite(rate) ? rate : 0,
  };
}
