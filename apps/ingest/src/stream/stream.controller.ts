import { Controller, Get, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { Roles } from '../auth/access.js';
import { ApiDoc } from '../http/openapi.js';
import { ZQuery } from '../http/zod.js';
import { streamQuerySchema } from '../telemetry/telemetry-schemas.js';
import type { LiveEventMap } from './live-events.js';
import { LiveStream } from './live-stream.js';
import { SseClient } from './sse-client.js';

const HEARTBEAT_MS = 15_000;

const STREAM_TYPES = ['readings', 'status', 'alerts', 'rollouts'] as const;
/** The telemetry stream query, with alert transitions and rollout progress as further kinds. */
const streamQuery = streamQuerySchema.extend({
  types: z
    .preprocess(
      (v) => (typeof v === 'string' ? [v] : v),
      z.array(z.enum(STREAM_TYPES)).max(STREAM_TYPES.length),
    )
    .optional(),
});
type StreamQuery = z.output<typeof streamQuery>;

@Controller('api/v1')
export class StreamController {
  constructor(private readonly live: LiveStream) {}

  @Get('stream')
  @Roles('viewer')
  @ApiDoc({
    summary:
      'Server-Sent Events: readings (filter with device=… and metric=…, repeatable), device status, alert transitions and rollout progress (types=readings|status|alerts|rollouts)',
    query: streamQuery,
    tag: 'stream',
  })
  stream(
    @ZQuery(streamQuery) q: StreamQuery,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    reply.hijack();
    const client = new SseClient(reply.raw);
    client.open(3000);
    const devices = q.device ? new Set(q.device) : undefined;
    const metrics = q.metric ? new Set(q.metric) : undefined;
    const types = new Set(q.types ?? STREAM_TYPES);

    const onReadings = ({ publisher, points }: LiveEventMap['readings'][0]) => {
      const selected = points.filter(
        (p) => (!devices || devices.has(p.device)) && (!metrics || metrics.has(p.metric)),
      );
      if (selected.length === 0) return;
      client.send('readings', {
        publisher,
        readings: selected.map((p) => ({
          device: p.device,
          metric: p.metric,
          time: new Date(p.timeMs).toISOString(),
          value: p.value,
          ...(p.unit ? { unit: p.unit } : {}),
          ...(p.backfilled ? { backfilled: true } : {}),
        })),
      });
    };
    const onStatus = (s: LiveEventMap['status'][0]) => {
      if (!devices || devices.has(s.deviceId)) {
        client.send('status', { ...s, at: new Date(s.at).toISOString() });
      }
    };
    // Alert transitions as their notification message (alerts/notification.ts).
    const onAlerts = (m: LiveEventMap['alerts'][0]) => {
      if (!devices || devices.has(m.alert.device)) client.send('alerts', m);
    };
    // Rollout progress: each device's change, and each rollout's summary per wave.
    const onRollouts = (e: LiveEventMap['rollouts'][0]) => {
      if (e.kind === 'progress' || !devices || devices.has(e.device.deviceId)) {
        client.send('rollouts', e);
      }
    };
    // Events of every replica (in cluster mode), each once.
    const offs: (() => void)[] = [];
    if (types.has('readings')) offs.push(this.live.on('readings', onReadings));
    if (types.has('status')) offs.push(this.live.on('status', onStatus));
    if (types.has('alerts')) offs.push(this.live.on('alerts', onAlerts));
    if (types.has('rollouts')) offs.push(this.live.on('rollouts', onRollouts));
    const heartbeat = setInterval(() => client.heartbeat(), HEARTBEAT_MS);
    heartbeat.unref();
    request.raw.on('close', () => {
      clearInterval(heartbeat);
      for (const off of offs) off();
    });
  }
}
