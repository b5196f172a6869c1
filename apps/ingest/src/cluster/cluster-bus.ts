import type { ClusterEnvelope, ClusterEvent, LiveType } from './cluster-messages.js';

export const CLUSTER_BUS = Symbol('CLUSTER_BUS');

/**
 * How replicas tell each other about registry changes and live events. Two implementations:
 * in process (one node: there is nobody to tell) and Redis pub/sub (cluster mode).
 * Delivery is at most once and best effort, like the live events it carries: what must not
 * be lost (revocations, desired configuration) is also in the shared registry.
 */
export interface ClusterBus {
  readonly replicaId: string;
  /** False for a single node: callers skip work that only other replicas would use. */
  readonly clustered: boolean;
  /** Sends to the other replicas; never throws (a failure is logged and counted). */
  publish(event: ClusterEvent): void;
  /** Messages from the other replicas, validated, each once. */
  onMessage(handler: (envelope: ClusterEnvelope) => void): () => void;
  /**
   * Whether this replica wants another replica's live events of `type` (it has SSE clients
   * for them). Only wanted live events cross the bus.
   */
  wantLive(type: LiveType, wanted: boolean): void;
  /** Whether any other replica currently wants live events of `type`. */
  othersWantLive(type: LiveType): boolean;
  /**
   * Called when the transport is back after an outage, with when it was lost (epoch ms):
   * what was sent meanwhile may not have arrived.
   */
  onReconnected(handler: (lostAt: number) => void): () => void;
  /** False while the bus cannot reach its transport (readiness reports it). */
  healthy(): boolean;
  start(): Promise<void>;
  close(): Promise<void>;
}
