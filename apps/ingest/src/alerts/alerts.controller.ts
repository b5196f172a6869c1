import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { CurrentPrincipal } from '../auth/access.guard.js';
import { type Principal, Roles } from '../auth/access.js';
import { ApiDoc } from '../http/openapi.js';
import { ZParam, ZQuery } from '../http/zod.js';
import {
  alertIdSchema,
  alertPageSchema,
  alertViewSchema,
  deadLetterPageSchema,
  deadLettersQuerySchema,
  deadLetterViewSchema,
  type ListAlertsQuery,
  listAlertsQuerySchema,
} from './alert-schemas.js';
import { AlertsService } from './alerts.service.js';

@Controller('api/v1/alerts')
export class AlertsController {
  constructor(private readonly alerts: AlertsService) {}

  @Get()
  @Roles('viewer')
  @ApiDoc({
    summary: 'Alerts, newest first; filter by state (open = pending and firing), rule, device',
    query: listAlertsQuerySchema,
    response: alertPageSchema,
    tag: 'alerts',
  })
  list(@ZQuery(listAlertsQuerySchema) query: ListAlertsQuery) {
    return this.alerts.listAlerts(query);
  }

  @Get('dead-letters')
  @Roles('operator')
  @ApiDoc({
    summary: 'Webhook notifications that could not be delivered, most recent first',
    query: deadLettersQuerySchema,
    response: deadLetterPageSchema,
    tag: 'alerts',
  })
  deadLetters(@ZQuery(deadLettersQuerySchema) query: { limit: number; after?: string }) {
    return this.alerts.listDeadLetters(query.limit, query.after);
  }

  @Post('dead-letters/:id/retry')
  @HttpCode(200)
  @Roles('operator')
  @ApiDoc({
    summary: 'Queue a dead letter again, with a fresh set of attempts',
    response: deadLetterViewSchema,
    tag: 'alerts',
  })
  retry(@ZParam('id', alertIdSchema) id: string) {
    return this.alerts.retryDeadLetter(id);
  }

  @Get(':id')
  @Roles('viewer')
  @ApiDoc({
    summary: 'An alert and the explanation of its latest transition',
    response: alertViewSchema,
    tag: 'alerts',
  })
  get(@ZParam('id', alertIdSchema) id: string) {
    return this.alerts.getAlert(id);
  }

  @Post(':id/ack')
  @HttpCode(200)
  @Roles('operator')
  @ApiDoc({
    summary: 'Acknowledge an open alert (idempotent); notifies the channels once',
    response: alertViewSchema,
    tag: 'alerts',
  })
  ack(@ZParam('id', alertIdSchema) id: string, @CurrentPrincipal() caller: Principal) {
    return this.alerts.acknowledge(id, caller);
  }
}
