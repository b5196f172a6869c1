import { collectDefaultMetrics, Registry } from 'prom-client';

/** One Prometheus registry per app instance (tests may run several in one process). */
export function createMetricsRegistry(replicaId: string): Registry {
  const registry = new Registry();
  // Replicas of one deployment are told apart by `replica` (INGEST_REPLICA_ID).
  registry.setDefaultLabels({ service: 'outpost-ingest', replica: replicaId });
  collectDefaultMetrics({ register: registry, prefix: 'outpost_ingest_' });
  return registry;
}
