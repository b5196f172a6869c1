import { MAX_STATE_PORTS } from '@outpost/protocol/limits';
import { type PortState, type ReportedState, reportedStateSchema } from '@outpost/protocol/state';
import type { OutboxStats } from '../outbox/outbox.js';
import type { PortStatus } from '../sources/source.js';

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

/**
 * PROTOCOL.md §6 reported state of the serial children, which cannot publish for themselves:
 * their gateway publishes each, retained, on the child's own state topic (§4 lets a gateway
 * publish under its children's ids). Only children whose `ID` line (§10) was heard: the
 * version is the one it named, and `uptime_s` counts from it, the last time the device is
 * known to have started or been asked, so it never overstates the device's uptime. Two ports
 * naming one device: the one heard from last.
 */
export function buildChildStates(
  ports: readonly PortStatus[],
  nowMs: number,
): { deviceId: string; state: ReportedState }[] {
  const latest = new Map<string, PortStatus & { identifiedAt: number }>();
  for (const port of ports) {
    if (port.identity === undefined || port.identifiedAt === undefined) continue;
    const seen = latest.get(port.device);
    if (seen === undefined || seen.identifiedAt <= port.identifiedAt) {
      latest.set(port.device, { ...port, identifiedAt: port.identifiedAt });
    }
  }
  return [...latest.values()].map((port) => ({
    deviceId: port.device,
    state: reportedStateSchema.parse({
      v: 1,
      firmware: { version: port.identity!.version },
      uptime_s: Math.max(0, Math.floor(nowMs / 1000 - port.identifiedAt)),
    }),
  }));
}
