import { Controller, Get, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { parseDuration, parseInstant } from '@outpost/protocol/duration';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CurrentDevice } from '../auth/access.guard.js';
import { DeviceAccess, Roles } from '../auth/access.js';
import type { DeviceSession } from '../broker/broker-auth.js';
import { deviceIdParamSchema } from '../devices/device-schemas.js';
import { DevicesService } from '../devices/devices.service.js';
import { InvalidInput, NotFound } from '../errors.js';
import { ApiDoc } from '../http/openapi.js';
import { ZParam, ZQuery } from '../http/zod.js';
import { CLOCK, type Clock } from '../injection.js';
import { TelemetryService } from './telemetry.service.js';
import { TelemetryPipeline } from './telemetry-pipeline.js';
import {
  acceptResultSchema,
  latestSchema,
  seriesSchema,
  type TelemetryQuery,
  telemetryQuerySchema,
} from './telemetry-schemas.js';
import { TELEMETRY_STORE, type TelemetryStore } from './telemetry-store.js';

const iso = (ms: number) => new Date(ms).toISOString();

const outboxViewSchema = z.object({
  pendingBatches: z.number().int(),
  pendingPoints: z.number().int(),
  oldestAgeS: z.number().int().nullable(),
  quarantinedBatches: z.number().int(),
  quarantinedPoints: z.number().int(),
});
const quarantineQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const quarantineEntrySchema = z.object({
  id: z.number().int(),
  publisher: z.string(),
  boot: z.string().nullable(),
  seq: z.tuple([z.number(), z.number()]).nullable(),
  points: z.number().int(),
  reason: z.string(),
  acceptedAt: z.iso.datetime(),
  quarantinedAt: z.iso.datetime(),
});

@Controller('api/v1')
export class TelemetryController {
  constructor(
    private readonly telemetry: TelemetryService,
    private readonly devices: DevicesService,
    @Inject(TELEMETRY_STORE) private readonly store: TelemetryStore,
    @Inject(CLOCK) private readonly clock: Clock,
    private readonly pipeline: TelemetryPipeline,
  ) {}

  @Get('telemetry/outbox')
  @Roles('viewer')
  @ApiDoc({
    summary:
      'The service-side telemetry backlog: accepted batches not yet in the store, and the quarantine',
    response: outboxViewSchema,
    tag: 'telemetry',
  })
  outbox() {
    const s = this.pipeline.outbox.stats();
    const now = this.clock.now();
    return {
      pendingBatches: s.pendingBatches,
      pendingPoints: s.pendingPoints,
      oldestAgeS: s.oldestMs === null ? null : Math.max(0, Math.round((now - s.oldestMs) / 1000)),
      quarantinedBatches: s.quarantinedBatches,
      quarantinedPoints: s.quarantinedPoints,
    };
  }

  @Get('telemetry/quarantine')
  @Roles('viewer')
  @ApiDoc({
    summary: 'Batches the store refused for good, with the reason (oldest first)',
    query: quarantineQuerySchema,
    response: z.array(quarantineEntrySchema),
    tag: 'telemetry',
  })
  async quarantine(@ZQuery(quarantineQuerySchema) q: z.output<typeof quarantineQuerySchema>) {
    return (await this.pipeline.outbox.listQuarantine(q.limit)).map((b) => ({
      id: b.id,
      publisher: b.publisher,
      boot: b.boot ?? null,
      seq: b.seq ?? null,
      points: b.points,
      reason: b.reason,
      acceptedAt: iso(b.acceptedMs),
      quarantinedAt: iso(b.quarantinedMs),
    }));
  }

  @Post('telemetry/quarantine/:id/requeue')
  @HttpCode(200)
  @Roles('operator')
  @ApiDoc({
    summary: 'Put a quarantined batch back in line for the store (after fixing the cause)',
    tag: 'telemetry',
  })
  async requeue(@ZParam('id', z.coerce.number().int().positive()) id: number) {
    if (!(await this.pipeline.outbox.requeue(id)))
      throw new NotFound('quarantined_batch', String(id));
    return { requeued: id };
  }

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
