import { Controller, Inject, Post, Req } from '@nestjs/common';
import { type EnrollmentRequest, enrollmentRequestSchema } from '@outpost/protocol/enrollment';
import type { FastifyRequest } from 'fastify';
import { CurrentPrincipal } from '../auth/access.guard.js';
import { type Principal, Public, Roles } from '../auth/access.js';
import type { IngestConfig } from '../config.js';
import { ApiDoc } from '../http/openapi.js';
import { ZBody } from '../http/zod.js';
import { CONFIG } from '../injection.js';
import {
  type CreateEnrollment,
  createEnrollmentSchema,
  enrollmentCreatedSchema,
} from './device-schemas.js';
import { type Endpoints, EnrollmentService } from './enrollment.service.js';

@Controller('api/v1')
export class EnrollmentsController {
  constructor(
    private readonly enrollment: EnrollmentService,
    @Inject(CONFIG) private readonly config: IngestConfig,
  ) {}

  @Post('enrollments')
  @Roles('technician')
  @ApiDoc({
    summary: 'Create a single-use enrollment token for a device id',
    body: createEnrollmentSchema,
    response: enrollmentCreatedSchema,
  })
  create(
    @ZBody(createEnrollmentSchema) body: CreateEnrollment,
    @CurrentPrincipal() caller: Principal,
  ) {
    return this.enrollment.createToken(body, caller);
  }

  @Post('enroll')
  @Public()
  @ApiDoc({
    summary:
      'Enroll a device: enrollment token + public key + proof of possession (PROTOCOL.md §2)',
    body: enrollmentRequestSchema,
  })
  enroll(@ZBody(enrollmentRequestSchema) body: EnrollmentRequest, @Req() request: FastifyRequest) {
    return this.enrollment.enroll(body, request.ip, this.endpoints(request));
  }

  private endpoints(request: FastifyRequest): Endpoints {
    const http = this.config.http.publicUrl ?? `${request.protocol}://${request.host}`;
    const url = new URL(http);
    const host = this.config.mqtt.publicHost ?? url.hostname;
    return {
      http: http.replace(/\/$/, ''),
      mqtt: {
        host,
        port: this.config.mqtt.port,
        tlsPort: this.config.mqtt.tlsPort === 0 ? null : this.config.mqtt.tlsPort,
        websocket: `${url.protocol === 'https:' ? 'wss' : 'ws'}://${url.host}/mqtt`,
      },
    };
  }
}
