import type { Readable } from 'node:stream';
import { Controller, Get, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CurrentDevice, CurrentPrincipal } from '../auth/access.guard.js';
import { DeviceAccess, type Principal, Roles } from '../auth/access.js';
import type { DeviceSession } from '../broker/broker-auth.js';
import { InvalidInput } from '../errors.js';
import { ApiDoc } from '../http/openapi.js';
import { ZParam, ZQuery } from '../http/zod.js';
import { contentRange, ifRangeHolds, parseRange } from './byte-range.js';
import { FirmwareService, firmwareView } from './firmware.service.js';
import {
  firmwarePageSchema,
  firmwareViewSchema,
  type ListFirmwareQuery,
  listFirmwareQuerySchema,
  MANIFEST_HEADER,
  otaIdSchema,
} from './ota-schemas.js';

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isStream(body: unknown): body is Readable {
  return typeof (body as { pipe?: unknown } | null)?.pipe === 'function';
}

@Controller('api/v1/firmware')
export class FirmwareController {
  constructor(private readonly firmware: FirmwareService) {}

  @Post()
  @Roles('firmware')
  @ApiDoc({
    summary: 'Upload a firmware: the artifact as the body, its signed manifest in a header',
    description: `The body is the artifact (\`application/octet-stream\`, streamed to disk); \`${MANIFEST_HEADER}\` carries the manifest, a compact JWS by a registered release key (PROTOCOL.md §8). Refused unless the bytes have exactly the manifest's size and sha256. 201 when stored, 200 when this manifest and artifact were stored before.`,
    bodyContentTypes: ['application/octet-stream'],
    response: firmwareViewSchema,
  })
  async upload(
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @CurrentPrincipal() caller: Principal,
  ) {
    try {
      if (!isStream(request.body)) {
        throw new InvalidInput('send the artifact as application/octet-stream');
      }
      const { created, firmware } = await this.firmware.upload(
        header(request, MANIFEST_HEADER),
        request.body,
        caller,
      );
      reply.status(created ? 201 : 200);
      return firmwareView(firmware);
    } catch (err) {
      // Whatever of the body is unread is not worth reading: close after the answer.
      reply.header('connection', 'close');
      throw err;
    }
  }

  @Get()
  @Roles('firmware')
  @ApiDoc({
    summary: 'Firmware, newest first',
    query: listFirmwareQuerySchema,
    response: firmwarePageSchema,
  })
  list(@ZQuery(listFirmwareQuerySchema) query: ListFirmwareQuery) {
    return this.firmware.list(query);
  }

  @Get(':id')
  @Roles('firmware')
  @ApiDoc({ summary: 'One firmware with its manifest', response: firmwareViewSchema })
  async get(@ZParam('id', otaIdSchema) id: string) {
    return firmwareView(await this.firmware.get(id));
  }

  @Get(':id/artifact')
  @DeviceAccess()
  @ApiDoc({
    summary: 'Download a firmware artifact offered to this device (or its children)',
    description:
      'With HTTP Range (RFC 9110 §14): `Range: bytes=N-` resumes an interrupted download (206); a range past the end is 416. The ETag is the quoted sha256. Rate limited per device (429 with Retry-After). 503 `artifact_corrupt` when the stored bytes no longer match the manifest.',
    tag: 'firmware',
  })
  async artifact(
    @ZParam('id', otaIdSchema) id: string,
    @CurrentDevice() device: DeviceSession,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    const firmware = await this.firmware.forDownload(device, id);
    const etag = `"${firmware.sha256}"`;
    const range = ifRangeHolds(header(request, 'if-range'), etag)
      ? parseRange(header(request, 'range'), firmware.size)
      : ({ kind: 'full' } as const);
    reply
      .header('accept-ranges', 'bytes')
      .header('etag', etag)
      .header('cache-control', 'private, no-cache')
      // RFC 9530: the digest of the whole artifact, whatever range is sent.
      .header('repr-digest', `sha-256=:${Buffer.from(firmware.sha256, 'hex').toString('base64')}:`);
    if (range.kind === 'unsatisfiable') {
      return reply
        .status(416)
        .header('content-range', contentRange(range, firmware.size))
        .header('content-type', 'application/problem+json')
        .send({
          type: 'urn:outpost:problem:range_not_satisfiable',
          title: 'Range Not Satisfiable',
          status: 416,
          detail: `the artifact has ${firmware.size} bytes`,
          code: 'range_not_satisfiable',
          instance: request.url.split('?')[0],
        });
    }
    const [start, end] =
      range.kind === 'partial' ? [range.start, range.end] : [0, firmware.size - 1];
    const stream = await this.firmware.openArtifact(firmware, start, end);
    reply
      .status(range.kind === 'partial' ? 206 : 200)
      .header('content-type', 'application/octet-stream')
      .header('content-length', String(end - start + 1));
    if (range.kind === 'partial') reply.header('content-range', contentRange(range, firmware.size));
    return reply.send(stream);
  }
}
