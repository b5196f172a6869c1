import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * Every metric the agent exports (`outpost_agent_*`), in one registry of its own (never the
 * global one, so tests make as many agents as they like). Modules get this object and
 * count; gauges of state owned elsewhere (the outbox, the ports) are read at scrape time
 * through `observe*`.
 */
export class AgentMetrics {
  readonly registry = new Registry();

  readonly readings = new Counter({
    name: 'outpost_agent_readings_total',
    help: 'Readings from the sources by outcome: outboxed, invalid (SenML cannot carry them), refused (outbox full), failed (disk error), withheld (quarantined unsent: a device refused as not_child whose commands topic the broker refuses)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly batchesSent = new Counter({
    name: 'outpost_agent_uplink_batches_sent_total',
    help: 'Signed batches handed to a transport',
    labelNames: ['transport', 'backfilled'] as const,
    registers: [this.registry],
  });
  readonly batchesAcked = new Counter({
    name: 'outpost_agent_uplink_batches_acked_total',
    help: 'Batches the ingest acknowledged (durably accepted)',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly recordsAcked = new Counter({
    name: 'outpost_agent_uplink_records_acked_total',
    help: 'Records in acknowledged batches',
    registers: [this.registry],
  });
  readonly batchesRejected = new Counter({
    name: 'outpost_agent_uplink_batches_rejected_total',
    help: 'Batches the ingest refused for good (PROTOCOL.md §9), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly batchesSplit = new Counter({
    name: 'outpost_agent_uplink_batches_split_total',
    help: 'Batches refused as not_child whose readings of the gateway and its registered children were queued again; the rest was quarantined',
    registers: [this.registry],
  });
  readonly sendFailures = new Counter({
    name: 'outpost_agent_uplink_send_failures_total',
    help: 'Sends that failed and will be retried, by reason',
    labelNames: ['transport', 'reason'] as const,
    registers: [this.registry],
  });
  readonly connects = new Counter({
    name: 'outpost_agent_uplink_connects_total',
    help: 'MQTT connection attempts by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly connected = new Gauge({
    name: 'outpost_agent_uplink_connected',
    help: '1 while the MQTT session to the ingest is up',
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'outpost_agent_uplink_inflight_batches',
    help: 'Batches sent and not yet acknowledged',
    registers: [this.registry],
  });
  readonly drainRate = new Gauge({
    name: 'outpost_agent_uplink_drain_rate_records_per_second',
    help: 'Acknowledged records per second, smoothed; 0 while nothing drains',
    registers: [this.registry],
  });
  readonly commands = new Counter({
    name: 'outpost_agent_commands_total',
    help: 'Commands received, by type and outcome (applied, ignored, refused)',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly statePublished = new Counter({
    name: 'outpost_agent_state_published_total',
    help: 'Reported-state messages published (PROTOCOL.md §6)',
    registers: [this.registry],
  });
  readonly configVersion = new Gauge({
    name: 'outpost_agent_config_version',
    help: 'Version of the remote configuration in force (0: only agent.yaml)',
    registers: [this.registry],
  });
  readonly clockJumps = new Counter({
    name: 'outpost_agent_clock_jumps_total',
    help: 'Wall-clock jumps seen (moves unlike the monotonic clock)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'outpost_agent_' });
    }
  }

  /** A gauge read from `read()` at each scrape. */
  observe(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A gauge with one label, read from `read()` (label value → value) at each scrape. */
  observeLabelled(
    name: string,
    help: string,
    label: string,
    read: () => Record<string, number>,
  ): void {
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [value, v] of Object.entries(read())) this.set({ [label]: value }, v);
      },
    });
  }
}
