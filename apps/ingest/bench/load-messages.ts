import type { PrivateJwk } from '@outpost/signing/keys';
import type { GatewayPlan } from './fleet.js';

/** What the bench and a load generator process say to each other (load-generator.ts). */

export interface GeneratorGateway extends GatewayPlan {
  /** MQTT password (a device JWT); none against the peer's anonymous broker. */
  password?: string;
  /** Signs the batches (PROTOCOL.md §5); without it they go out as bare SenML packs. */
  privateJwk?: PrivateJwk;
  /** PROTOCOL.md §5 boot id of this run. */
  boot: string;
}

export type ToGenerator =
  | {
      type: 'prepare';
      brokerUrl: string;
      gateways: GeneratorGateway[];
      /** Batches built (and signed) per gateway before the clock starts. */
      batchesPerGateway: number;
      /** Time of batch 0; batch i is at `t0Ms + i`. */
      t0Ms: number;
      /** Unacknowledged QoS 1 publishes per connection. */
      window: number;
    }
  | { type: 'start'; durationMs: number }
  | { type: 'stop' };

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export type FromGenerator =
  | { type: 'ready'; prepareMs: number; payloadBytes: number; connected: number }
  | {
      type: 'done';
      /** Epoch ms (fractional) of the first publish and of the last acknowledgement. */
      firstPublishAt: number;
      lastAckAt: number;
      published: number;
      acked: number;
      readingsAcked: number;
      /** Gateways that sent every prepared batch before the deadline. */
      exhausted: number;
      /** Connections lost or refused during the run. */
      errors: string[];
      /** PUBLISH → PUBACK in milliseconds. */
      latencyMs: LatencySummary;
    };
