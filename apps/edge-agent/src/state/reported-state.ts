import { MAX_STATE_PORTS } from '@outpost/protocol/limits';
import { type PortState, type ReportedState, reportedStateSchema } from '@outpost/protocol/state';
import type { OutboxStats } from '../outbox/outbox.js';

/**
 * PROTOCOL.md §6 reported state of the gateway. Pure: everything it says is passed in. The
 * outbox part lets an operator tell "offline but buffering (N pending, oldest 3 h)" from
 * "dead"; `dropped` is what the outbox lost for good (dropped to make room, refused when
 * full), not what it merged into aggregates.
 */
export interface StateInput {
  agentVersion: string;
  /** What the gateway itself runs; the agent's version when nothing else is known. */
  firmwareVersion?: string;
  uptimeS: number;
  outbox: OutboxStats;
  ports: readonly { path: string; state: PortState }[];
  configVersion: number;
  /** Wall clock, epoch ms. */
  nowMs: number;
}

export function buildReportedState(input: StateInput): ReportedState {
  const { outbox } = input;
  const oldestS =
    outbox.oldestMs === undefined ? 0 : Math.max(0, (input.nowMs - outbox.oldestMs) / 1000);
  const state: ReportedState = {
    v: 1,
    firmware: { version: input.firmwareVersion ?? input.agentVersion },
    agent: { version: input.agentVersion },
    uptime_s: Math.max(0, Math.floor(input.uptimeS)),
    outbox: {
      pending: outbox.records,
      bytes: outbox.bytes,
      oldest_s: Math.floor(oldestS),
      dropped: outbox.counters.droppedRecords + outbox.counters.rejectedRecords,
    },
    ports: input.ports.slice(0, MAX_STATE_PORTS).map((p) => ({ path: p.path, state: p.state })),
    config_version: input.configVersion,
  };
  // The ingest refuses a state that breaks the schema; fail here, loudly, instead.
  return reportedStateSchema.parse(state);
}
