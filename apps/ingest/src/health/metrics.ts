import { collectDefaultMetrics, Registry } from 'prom-client';

/** One Prometheus registry per app instance (tests may run several in one process). */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'outpost-ingest' });
  collectDefaultMetrics({ register: registry, prefix: 'outpost_ingest_' });
  return registry;
}
