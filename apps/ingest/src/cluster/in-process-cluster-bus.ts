import type { ClusterBus } from './cluster-bus.js';
import type { ClusterEnvelope } from './cluster-messages.js';

/** One node: no other replica to tell, none to hear from. */
export class InProcessClusterBus implements ClusterBus {
  readonly clustered = false;

  constructor(readonly replicaId: string) {}

  publish(): void {}

  onMessage(_handler: (envelope: ClusterEnvelope) => void): () => void {
    return () => {};
  }

  onReconnected(_handler: (lostAt: number) => void): () => void {
    return () => {};
  }

  wantLive(): void {}

  othersWantLive(): boolean {
    return false;
  }

  healthy(): boolean {
    return true;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}
}
