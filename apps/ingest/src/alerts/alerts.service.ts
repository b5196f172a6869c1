import { Inject, Injectable } from '@nestjs/common';
import type { Principal } from '../auth/access.js';
import type { IngestConfig } from '../config.js';
import { NotFound } from '../errors.js';
import { parseInput } from '../http/zod.js';
import { CLOCK, type Clock, CONFIG, RANDOM, type Random } from '../injection.js';
import { AlertEngine } from './alert-engine.js';
import { AlertNotOpen, RuleImpossible, TooManyRules } from './alert-errors.js';
import {
  type AlertView,
  alertView,
  deadLetterView,
  encodeCursor,
  type ListAlertsQuery,
  mergePatch,
  type PatchRule,
  type RuleInput,
  type RuleView,
  ruleInputOf,
  ruleInputSchema,
  ruleView,
} from './alert-schemas.js';
import { ALERT_STORE, type AlertStore, type NewDelivery } from './alert-store.js';
import { DeliveryWorker } from './delivery-worker.js';
import type { AlertStatus, RetireReason } from './evaluate.js';
import { acknowledgedMessage } from './notification.js';
import { LogNotifier } from './notifiers/log-notifier.js';
import { StreamNotifier } from './notifiers/stream-notifier.js';
import { defaultRuleName, type RuleRecord, type RuleSpec, ruleProblems } from './rule.js';

/** 256 bits, shown once: the HMAC key of a rule's webhook signatures. */
const newSecret = (random: Random) => `whsec_${random.token(32)}`;

/** Rules, alerts, acknowledgement and the dead letters of the webhook queue. */
@Injectable()
export class AlertsService {
  constructor(
    @Inject(ALERT_STORE) private readonly store: AlertStore,
    @Inject(CONFIG) private readonly config: IngestConfig,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(RANDOM) private readonly random: Random,
    private readonly engine: AlertEngine,
    private readonly worker: DeliveryWorker,
    private readonly stream: StreamNotifier,
    private readonly logNotifier: LogNotifier,
  ) {}

  async createRule(
    input: RuleInput,
    caller: Principal,
  ): Promise<RuleView & { webhookSecret: string }> {
    refuseImpossible(input.spec);
    if ((await this.store.listRules()).length >= this.config.alerts.maxRules) {
      throw new TooManyRules(this.config.alerts.maxRules);
    }
    const now = this.clock.now();
    const rule: RuleRecord = {
      id: this.random.uuid(),
      name: input.name ?? defaultRuleName(input.spec),
      enabled: input.enabled,
      spec: input.spec,
      createdBy: caller.name,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
    };
    const webhookSecret = newSecret(this.random);
    await this.store.insertRule(rule, webhookSecret);
    await this.engine.rulesChanged();
    return { ...ruleView(rule), webhookSecret };
  }

  async listRules(): Promise<RuleView[]> {
    return (await this.store.listRules()).map(ruleView);
  }

  async getRule(id: string): Promise<RuleView> {
    return ruleView(await this.liveRule(id));
  }

  /**
   * Applies a change and validates the whole rule again. Open alerts are retired when the
   * condition or scope changes, or the rule is disabled: they no longer mean what they said.
   */
  async patchRule(id: string, patch: PatchRule): Promise<RuleView> {
    const current = await this.liveRule(id);
    const merged = mergePatch({ ...ruleInputOf(current.spec), enabled: current.enabled }, patch);
    const parsed = parseInput(ruleInputSchema, merged, 'body');
    refuseImpossible(parsed.spec);
    const updated: RuleRecord = {
      ...current,
      name: patch.name ?? current.name,
      enabled: parsed.enabled,
      spec: parsed.spec,
      updatedAt: Math.max(this.clock.now(), current.updatedAt + 1),
    };
    if (!(await this.store.updateRule(updated))) throw new NotFound('alert_rule', id);
    let retire: RetireReason | undefined;
    if (current.enabled && !updated.enabled) retire = 'rule_disabled';
    else if (conditionOf(current.spec) !== conditionOf(updated.spec)) retire = 'rule_changed';
    await this.engine.rulesChanged(id, retire);
    return ruleView(updated);
  }

  /** Deletes a rule; its open alerts resolve. Its alerts stay listed, under its name. */
  async deleteRule(id: string): Promise<RuleView> {
    const current = await this.liveRule(id);
    const now = this.clock.now();
    const deleted = { ...current, deletedAt: now, updatedAt: Math.max(now, current.updatedAt + 1) };
    if (!(await this.store.updateRule(deleted))) throw new NotFound('alert_rule', id);
    await this.engine.rulesChanged(id, 'rule_deleted');
    return ruleView(deleted);
  }

  async rotateSecret(id: string): Promise<{ id: string; webhookSecret: string }> {
    const webhookSecret = newSecret(this.random);
    if (!(await this.store.setRuleSecret(id, webhookSecret, this.clock.now()))) {
      throw new NotFound('alert_rule', id);
    }
    return { id, webhookSecret };
  }

  async listAlerts(q: ListAlertsQuery): Promise<{ items: AlertView[]; next: string | null }> {
    const status = q.state
      ? [...new Set(q.state.flatMap((s) => (s === 'open' ? ['pending', 'firing'] : [s])))]
      : undefined;
    const page = await this.store.listAlerts({
      ...(status ? { status: status as AlertStatus[] } : {}),
      ...(q.rule ? { ruleId: q.rule } : {}),
      ...(q.device ? { device: q.device } : {}),
      ...(q.severity ? { severity: q.severity } : {}),
      ...(q.acknowledged ? { acknowledged: q.acknowledged === 'true' } : {}),
      limit: q.limit,
      ...(q.after ? { after: q.after } : {}),
    });
    const now = this.clock.now();
    return { items: page.items.map((a) => alertView(a, now)), next: encodeCursor(page.next) };
  }

  async getAlert(id: string): Promise<AlertView> {
    const alert = await this.store.getAlert(id);
    if (!alert) throw new NotFound('alert', id);
    return alertView(alert, this.clock.now());
  }

  /**
   * Acknowledges an open alert, once: acknowledging it again answers the same. The
   * acknowledgement is a transition: the stream and the log hear of it, and the webhooks
   * too when the alert paged.
   */
  async acknowledge(id: string, caller: Principal): Promise<AlertView> {
    const alert = await this.store.getAlert(id);
    if (!alert) throw new NotFound('alert', id);
    const rule = await this.store.getRule(alert.ruleId);
    const now = this.clock.now();
    const message = rule
      ? acknowledgedMessage(
          this.random.uuid(),
          { ...alert, acknowledgedAt: now, acknowledgedBy: caller.name },
          rule,
        )
      : undefined;
    const deliveries: NewDelivery[] =
      message && alert.paged
        ? rule!.spec.channels.flatMap((c) =>
            c.type === 'webhook'
              ? [
                  {
                    id: this.random.uuid(),
                    alertId: alert.id,
                    ruleId: alert.ruleId,
                    device: alert.device,
                    event: message.type,
                    url: c.url,
                    body: JSON.stringify(message),
                    createdAt: now,
                  },
                ]
              : [],
          )
        : [];
    const result = await this.store.acknowledge(id, caller.name, now, deliveries);
    if (result.outcome === 'not_found') throw new NotFound('alert', id);
    if (result.outcome === 'not_open') throw new AlertNotOpen(id, result.alert.status);
    if (result.outcome === 'acknowledged' && message) {
      if (deliveries.length > 0) this.worker.wake();
      const out = { message, body: '', deliveryId: message.id, attempt: 1 };
      await this.stream.send(out);
      if (rule!.spec.channels.some((c) => c.type === 'log')) await this.logNotifier.send(out);
    }
    return alertView(result.alert, now);
  }

  async listDeadLetters(limit: number, after?: string) {
    const items = await this.store.listDeadDeliveries(limit + 1, after);
    const page = items.slice(0, limit);
    return {
      items: page.map(deadLetterView),
      next: items.length > limit ? (page.at(-1)?.id ?? null) : null,
    };
  }

  /** Queues a dead letter again, with a fresh set of attempts. */
  async retryDeadLetter(id: string) {
    const delivery = await this.store.retryDelivery(id, this.clock.now());
    if (!delivery) throw new NotFound('dead_letter', id);
    this.worker.wake();
    return deadLetterView(delivery);
  }

  private async liveRule(id: string): Promise<RuleRecord> {
    const rule = await this.store.getRule(id);
    if (!rule || rule.deletedAt !== null) throw new NotFound('alert_rule', id);
    return rule;
  }
}

function refuseImpossible(spec: RuleSpec): void {
  const problems = ruleProblems(spec);
  if (problems.length > 0) throw new RuleImpossible(problems);
}

/** What an alert of the rule means: everything but its severity and channels. */
function conditionOf(spec: RuleSpec): string {
  const { severity: _s, channels: _c, ...condition } = spec;
  return canonical(condition);
}

/** JSON with sorted keys: stored specs may come back with their keys reordered (JSONB). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
