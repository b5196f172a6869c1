import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';
import type { AlertMessage } from '../alerts/notification.js';
import type { RolloutStreamEvent } from '../ota/ota-schemas.js';
import type { TelemetryPoint } from '../telemetry/telemetry-store.js';

/**
 * What happens now, in process: accepted readings, device status changes, alert transitions
 * and rollout progress. The SSE stream and the alert engine listen. Readings are emitted once
 * a batch is durably accepted, never for duplicates or refusals; alert transitions and rollout
 * progress once committed.
 */
export interface LiveEventMap {
  readings: [{ publisher: string; points: readonly TelemetryPoint[] }];
  status: [{ deviceId: string; online: boolean; reason: string | null; at: number }];
  alerts: [AlertMessage];
  rollouts: [RolloutStreamEvent];
}

@Injectable()
export class LiveEvents extends EventEmitter<LiveEventMap> {
  constructor() {
    super();
    // One listener per SSE client; each is bounded by its own buffer.
    this.setMaxListeners(0);
  }
}
