import { Controller, Delete, Get, HttpCode, Patch, Post } from '@nestjs/common';
import { z } from 'zod';
import { CurrentPrincipal } from '../auth/access.guard.js';
import { type Principal, Roles } from '../auth/access.js';
import { ApiDoc } from '../http/openapi.js';
import { ZBody, ZParam } from '../http/zod.js';
import {
  alertIdSchema,
  createdRuleSchema,
  type PatchRule,
  patchRuleSchema,
  type RuleInput,
  ruleInputSchema,
  ruleSecretSchema,
  ruleViewSchema,
} from './alert-schemas.js';
import { AlertsService } from './alerts.service.js';

@Controller('api/v1/alert-rules')
@Roles('operator')
export class AlertRulesController {
  constructor(private readonly alerts: AlertsService) {}

  @Post()
  @ApiDoc({
    summary:
      'Create a threshold or offline rule; its webhook signing secret is shown only in this answer',
    body: ruleInputSchema,
    response: createdRuleSchema,
    tag: 'alerts',
  })
  create(@ZBody(ruleInputSchema) body: RuleInput, @CurrentPrincipal() caller: Principal) {
    return this.alerts.createRule(body, caller);
  }

  @Get()
  @ApiDoc({ summary: 'List alert rules', response: z.array(ruleViewSchema), tag: 'alerts' })
  list() {
    return this.alerts.listRules();
  }

  @Get(':id')
  @ApiDoc({ summary: 'An alert rule', response: ruleViewSchema, tag: 'alerts' })
  get(@ZParam('id', alertIdSchema) id: string) {
    return this.alerts.getRule(id);
  }

  @Patch(':id')
  @ApiDoc({
    summary:
      'Change a rule (null removes a field); open alerts resolve when its condition changes or it is disabled',
    body: patchRuleSchema,
    response: ruleViewSchema,
    tag: 'alerts',
  })
  patch(@ZParam('id', alertIdSchema) id: string, @ZBody(patchRuleSchema) body: PatchRule) {
    return this.alerts.patchRule(id, body);
  }

  @Delete(':id')
  @ApiDoc({
    summary: 'Delete a rule; its open alerts resolve, its past alerts stay listed',
    response: ruleViewSchema,
    responseStatus: 200,
    tag: 'alerts',
  })
  remove(@ZParam('id', alertIdSchema) id: string) {
    return this.alerts.deleteRule(id);
  }

  @Post(':id/rotate-secret')
  @HttpCode(200)
  @ApiDoc({
    summary: 'Replace the webhook signing secret of a rule; the new one is shown only now',
    response: ruleSecretSchema,
    tag: 'alerts',
  })
  rotateSecret(@ZParam('id', alertIdSchema) id: string) {
    return this.alerts.rotateSecret(id);
  }
}
