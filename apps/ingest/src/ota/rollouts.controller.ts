import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { CurrentPrincipal } from '../auth/access.guard.js';
import { type Principal, Roles } from '../auth/access.js';
import { ApiDoc } from '../http/openapi.js';
import { ZBody, ZParam, ZQuery } from '../http/zod.js';
import {
  type CreateRollout,
  createRolloutSchema,
  type ListRolloutsQuery,
  listRolloutsQuerySchema,
  otaIdSchema,
  type RolloutQuery,
  rolloutDetailSchema,
  rolloutPageSchema,
  rolloutQuerySchema,
} from './ota-schemas.js';
import { RolloutsService } from './rollouts.service.js';

@Controller('api/v1/rollouts')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post()
  @Roles('firmware')
  @ApiDoc({
    summary: 'Start a rollout of a firmware to target devices, in waves',
    description:
      'Targets (tags, device ids, children of gateways) are resolved once and ordered by a hash of (rollout id, device id). Each wave is offered once the previous one finished and soaked; the rollout aborts itself when failed / finished devices exceeds abortFailureRate after minDevices finished.',
    body: createRolloutSchema,
    response: rolloutDetailSchema,
  })
  create(@ZBody(createRolloutSchema) body: CreateRollout, @CurrentPrincipal() caller: Principal) {
    return this.rollouts.create(body, caller);
  }

  @Get()
  @Roles('viewer')
  @ApiDoc({
    summary: 'Rollouts, newest first',
    query: listRolloutsQuerySchema,
    response: rolloutPageSchema,
  })
  list(@ZQuery(listRolloutsQuerySchema) query: ListRolloutsQuery) {
    return this.rollouts.list(query);
  }

  @Get(':id')
  @Roles('viewer')
  @ApiDoc({
    summary: 'A rollout with progress per wave and per device (with reasons)',
    query: rolloutQuerySchema,
    response: rolloutDetailSchema,
  })
  get(@ZParam('id', otaIdSchema) id: string, @ZQuery(rolloutQuerySchema) query: RolloutQuery) {
    return this.rollouts.detail(id, query);
  }

  @Post(':id/pause')
  @HttpCode(200)
  @Roles('firmware')
  @ApiDoc({
    summary: 'Pause: no new offers and no timeouts until resumed',
    response: rolloutDetailSchema,
  })
  pause(@ZParam('id', otaIdSchema) id: string, @CurrentPrincipal() caller: Principal) {
    return this.rollouts.control(id, 'pause', caller);
  }

  @Post(':id/resume')
  @HttpCode(200)
  @Roles('firmware')
  @ApiDoc({ summary: 'Resume a paused rollout', response: rolloutDetailSchema })
  resume(@ZParam('id', otaIdSchema) id: string, @CurrentPrincipal() caller: Principal) {
    return this.rollouts.control(id, 'resume', caller);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @Roles('firmware')
  @ApiDoc({
    summary: 'Cancel: no further offers; devices already updating finish on their own',
    response: rolloutDetailSchema,
  })
  cancel(@ZParam('id', otaIdSchema) id: string, @CurrentPrincipal() caller: Principal) {
    return this.rollouts.control(id, 'cancel', caller);
  }
}
