import { Controller, Get, HttpCode, Patch, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { Roles } from '../auth/access.js';
import { InvalidInput } from '../errors.js';
import { ApiDoc } from '../http/openapi.js';
import { ZBody, ZParam, ZQuery } from '../http/zod.js';
import {
  deviceIdParamSchema,
  devicePageSchema,
  deviceViewSchema,
  importResultSchema,
  listDevicesQuerySchema,
  type PatchDevice,
  patchDeviceSchema,
} from './device-schemas.js';
import { DevicesService, deviceView } from './devices.service.js';

@Controller('api/v1/devices')
export class DevicesController {
  constructor(private readonly devices: DevicesService) {}

  @Get()
  @Roles('viewer')
  @ApiDoc({
    summary: 'List devices; filter by tag (repeatable k=v), kind, gateway, status, text',
    query: listDevicesQuerySchema,
    response: devicePageSchema,
  })
  list(@ZQuery(listDevicesQuerySchema) query: z.output<typeof listDevicesQuerySchema>) {
    return this.devices.list(query);
  }

  @Post('import')
  @HttpCode(200)
  @Roles('technician')
  @ApiDoc({
    summary: 'Bulk import from CSV or JSON; validated whole, all or nothing',
    bodyContentTypes: ['text/csv', 'application/json'],
    response: importResultSchema,
  })
  import(@Req() request: FastifyRequest) {
    const body = request.body;
    if (typeof body === 'string') return this.devices.import({ csv: body });
    if (body !== undefined && body !== null) return this.devices.import({ json: body });
    throw new InvalidInput('send a CSV (text/csv) or JSON (application/json) body');
  }

  @Get(':id')
  @Roles('viewer')
  @ApiDoc({
    summary: 'A device: record, connectivity, reported state, outbox',
    response: deviceViewSchema,
  })
  async show(@ZParam('id', deviceIdParamSchema) id: string) {
    return deviceView(await this.devices.get(id));
  }

  @Patch(':id')
  @Roles('technician')
  @ApiDoc({
    summary: 'Change name, tags, policy or desired config',
    body: patchDeviceSchema,
    response: deviceViewSchema,
  })
  async patch(
    @ZParam('id', deviceIdParamSchema) id: string,
    @ZBody(patchDeviceSchema) body: PatchDevice,
  ) {
    return deviceView(await this.devices.patch(id, body));
  }

  @Post(':id/revoke')
  @HttpCode(200)
  @Roles('technician')
  @ApiDoc({
    summary: 'Revoke a device: its sessions are closed and its keys refused',
    response: deviceViewSchema,
  })
  async revoke(@ZParam('id', deviceIdParamSchema) id: string) {
    return deviceView(await this.devices.revoke(id));
  }
}
