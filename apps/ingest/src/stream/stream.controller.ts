import { Controller, Get, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Roles } from '../auth/access.js';
import { ApiDoc } from '../http/openapi.js';
import { ZQuery } from '../http/zod.js';
import { type StreamQuery, streamQuerySchema } from '../telemetry/telemetry-schemas.js';
import { type LiveEventMap, LiveEvents } from './live-events.js';
import { SseClient } from './sse-client.js';

const HEARTBEAT_MS = 15_000;

@Controller('api/v1')
export class StreamController {
  constructor(private readonly live: LiveEvents) {}

  @Get('stream')
  @Roles('viewer')
  @ApiDoc({
    summary:
      'Server-Sent Events: readings (filter with device=… and metric=…, repeatable) and device status',
    query: streamQuerySchema,
    tag: 'stream',
  })
  stream(
    @ZQuery(streamQuerySchema) q: StreamQuery,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    reply.hijack();
    const client = new SseClient(reply.raw);
    client.open(3000);
    const devices = q.device ? new Set(q.device) : undefined;
    const metrics = q.metric ? new Set(q.metric) : undefined;
    const types = new Set(q.types ?? ['readings', 'status']);

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
    if (types.has('readings')) this.live.on('readings', onReadings);
    if (types.has('status')) this.live.on('status', onStatus);
    const heartbeat = setInterval(() => client.heartbeat(), HEARTBEAT_MS);
    heartbeat.unref();
    request.raw.on('close', () => {
      clearInterval(heartbeat);
      this.live.off('readings', onReadings);
      this.live.off('status', onStatus);
    });
  }
}
