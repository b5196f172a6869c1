import { Controller, Get, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { parseDuration, parseInstant } from '@outpost/protocol/duration';
import type { FastifyRequest } from 'fastify';
import { CurrentDevice } from '../auth/access.guard.js';
import { DeviceAccess, Roles } from '../auth/access.js';
import type { DeviceSession } from '../broker/broker-auth.js';
import { deviceIdParamSchema } from '../devices/device-schemas.js';
import { DevicesService } from '../devices/devices.service.js';
import { InvalidInput } from '../errors.js';
import { ApiDoc } from '../http/openapi.js';
import { ZParam, ZQuery } from '../http/zod.js';
import { CLOCK, type Clock } from '../injection.js';
import { TelemetryService } from './telemetry.service.js';
import {
  acceptResultSchema,
  latestSchema,
  seriesSchema,
  type TelemetryQuery,
  telemetryQuerySchema,
} from './telemetry-schemas.js';
import { TELEMETRY_STORE, type TelemetryStore } from './telemetry-store.js';

const iso = (ms: number) => new Date(ms).toISOString();

@Controller('api/v1')
export class TelemetryController {
  constructor(
    private readonly telemetry: TelemetryService,
    private readonly devices: DevicesService,
    @Inject(TELEMETRY_STORE) private readonly store: TelemetryStore,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  @Post('telemetry')
  @HttpCode(200)
  @DeviceAccess()
  @ApiDoc({
    summary: 'HTTP ingest of one telemetry batch (PROTOCOL.md §5), answered once durably accepted',
    bodyContentTypes: ['application/jose', 'application/senml+json'],
    response: acceptResultSchema,
    tag: 'telemetry',
  })
  ingest(@Req() request: FastifyRequest, @CurrentDevice() device: DeviceSession) {
    const body = request.body;
    if (!Buffer.isBuffer(body)) {
      throw new InvalidInput(
        'send the batch as application/jose (signed) or application/senml+json',
      );
    }
    return this.telemetry.accept(device, body);
  }

  @Get('devices/:id/telemetry')
  @Roles('viewer')
  @ApiDoc({
    summary: 'Readings of one metric over a time range, raw or aggregated',
    query: telemetryQuerySchema,
    response: seriesSchema,
    tag: 'telemetry',
  })
  async query(
    @ZParam('id', deviceIdParamSchema) id: string,
    @ZQuery(telemetryQuerySchema) q: TelemetryQuery,
  ) {
    await this.devices.get(id);
    const now = this.clock.now();
    const fromMs = parseInstant(q.from, now)!;
    const toMs = parseInstant(q.to, now)!;
    if (fromMs >= toMs) throw new InvalidInput('"from" must be before "to"');
    const everyMs = q.every ? parseDuration(q.every)! : undefined;
    if (everyMs !== undefined && (toMs - fromMs) / everyMs > 100_000) {
      throw new InvalidInput('too many windows: choose a larger "every" or a shorter range');
    }
    const rows = await this.store.query({
      device: id,
      metric: q.metric,
      fromMs,
      toMs,
      ...(everyMs ? { everyMs, fn: q.fn ?? 'mean' } : {}),
      limit: q.limit,
    });
    return {
      device: id,
      metric: q.metric,
      from: iso(fromMs),
      to: iso(toMs),
      every: q.every ?? null,
      fn: everyMs ? (q.fn ?? 'mean') : null,
      points: rows.map((r) => ({ time: iso(r.timeMs), value: r.value })),
    };
  }

  @Get('devices/:id/latest')
  @Roles('viewer')
  @ApiDoc({
    summary: 'The latest value of every metric of a device',
    response: latestSchema,
    tag: 'telemetry',
  })
  async latest(@ZParam('id', deviceIdParamSchema) id: string) {
    await this.devices.get(id);
    const rows = await this.store.latest(id);
    return {
      device: id,
      metrics: rows.map((r) => ({
        metric: r.metric,
        time: iso(r.timeMs),
        value: r.value,
        ...(r.unit ? { unit: r.unit } : {}),
      })),
    };
  }
}
