import { ALERT_SEVERITIES } from '@outpost/protocol/events';
import { metricNameSchema } from '@outpost/protocol/ids';
import { Argument, type Command, Option } from 'commander';
import { z } from 'zod';
import {
  type Alert,
  type AlertPage,
  type AlertRule,
  alertPageSchema,
  alertRuleListSchema,
  alertRuleSchema,
  alertSchema,
  createdAlertRuleSchema,
} from '../api-schemas.js';
import type { CliContext } from '../context.js';
import { UsageError } from '../errors.js';
import {
  deviceIdSchema,
  durationSchema,
  limitSchema,
  nameSchema,
  parser,
  repeatable,
  type TagPair,
  tagPairSchema,
  tagsFromPairs,
} from '../flags.js';
import { formatAge, formatTags, renderKeyValue, renderTable } from '../output.js';

/**
 * `outpost rules …` and `outpost alerts …` (SURFACES.md): alert rules (operator) and the
 * alerts they raise (viewer lists, operator acknowledges).
 */

const WEEK_S = 7 * 24 * 3600;
const PAGE_SIZE_ALL = 500;

const numberSchema = z
  .string()
  .trim()
  .regex(/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i, 'expected a number such as 90 or -2.5')
  .transform(Number);
const severitySchema = z.enum(ALERT_SEVERITIES);
const webhookSchema = z
  .url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL' })
  .max(2048, 'URLs are at most 2048 characters');
const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'ids match ^[A-Za-z0-9_-]{1,64}$');
export const ALERT_LIST_STATES = ['open', 'pending', 'firing', 'resolved', 'cancelled'] as const;
const alertStateSchema = z.enum(ALERT_LIST_STATES);

export interface RuleFlags {
  metric?: string;
  above?: number;
  below?: number;
  clearBelow?: number;
  clearAbove?: number;
  for?: number;
  clearFor?: number;
  rate?: number;
  offline?: number;
  tag?: TagPair[];
  device?: string[];
  gateway?: string;
  severity?: string;
  webhook?: string[];
  name?: string;
  pageBackfill?: boolean;
  flap?: boolean;
}

/** The API body of `rules add`; combinations the flags cannot express are usage errors. */
export function ruleBody(flags: RuleFlags): Record<string, unknown> {
  const tags = tagsFromPairs(flags.tag);
  const scope = {
    ...(flags.device?.length ? { devices: [...new Set(flags.device)] } : {}),
    ...(Object.keys(tags).length > 0 ? { tags } : {}),
    ...(flags.gateway ? { gateway: flags.gateway } : {}),
  };
  const common = {
    ...(flags.name ? { name: flags.name } : {}),
    scope,
    ...(flags.severity ? { severity: flags.severity } : {}),
    channels: [...(flags.webhook ?? []).map((url) => ({ type: 'webhook', url })), { type: 'log' }],
  };
  const thresholdOnly = (
    ['metric', 'above', 'below', 'clearBelow', 'clearAbove', 'for', 'clearFor', 'rate'] as const
  ).filter((k) => flags[k] !== undefined);
  if (flags.offline !== undefined) {
    if (thresholdOnly.length > 0 || flags.pageBackfill || flags.flap === false) {
      throw new UsageError(
        '--offline watches silence, not a metric',
        'drop --metric, --above, --below, --clear-*, --for, --rate, --page-backfill and --no-flap',
      );
    }
    return { kind: 'offline', after: flags.offline, ...common };
  }
  if (!flags.metric) {
    throw new UsageError(
      'say what to watch',
      'give --metric M with --above X or --below X, or --offline 5m',
    );
  }
  if ((flags.above === undefined) === (flags.below === undefined)) {
    throw new UsageError('give one limit', 'use --above X or --below X');
  }
  return {
    kind: 'threshold',
    metric: flags.metric,
    ...(flags.above !== undefined ? { above: flags.above } : {}),
    ...(flags.below !== undefined ? { below: flags.below } : {}),
    ...(flags.clearBelow !== undefined ? { clearBelow: flags.clearBelow } : {}),
    ...(flags.clearAbove !== undefined ? { clearAbove: flags.clearAbove } : {}),
    ...(flags.for !== undefined ? { for: flags.for } : {}),
    ...(flags.clearFor !== undefined ? { clearFor: flags.clearFor } : {}),
    ...(flags.rate !== undefined ? { rate: flags.rate } : {}),
    ...(flags.pageBackfill ? { backfill: 'page' } : {}),
    ...(flags.flap === false ? { flap: null } : {}),
    ...common,
  };
}

export function scopeText(scope: AlertRule['scope']): string {
  const parts = [
    ...(scope.devices ? [`devices=${scope.devices.join(',')}`] : []),
    ...(scope.gateway ? [`gateway=${scope.gateway}`] : []),
    ...(scope.tags ? [formatTags(scope.tags)] : []),
  ];
  return parts.join(' ') || 'all devices';
}

function channelsText(rule: AlertRule): string {
  return rule.channels.map((c) => (c.type === 'webhook' ? `webhook ${c.url}` : c.type)).join(', ');
}

export function ruleColumns() {
  return [
    { header: 'id', value: (r: AlertRule) => r.id },
    { header: 'name', value: (r: AlertRule) => r.name },
    { header: 'condition', value: (r: AlertRule) => r.condition },
    { header: 'scope', value: (r: AlertRule) => scopeText(r.scope) },
    { header: 'severity', value: (r: AlertRule) => r.severity },
    { header: 'enabled', value: (r: AlertRule) => (r.enabled ? 'yes' : 'no') },
  ];
}

export function alertColumns(now: number) {
  return [
    { header: 'id', value: (a: Alert) => a.id },
    { header: 'state', value: (a: Alert) => (a.acknowledgedAt ? `${a.state} (ack)` : a.state) },
    { header: 'severity', value: (a: Alert) => a.severity },
    { header: 'device', value: (a: Alert) => a.device },
    { header: 'rule', value: (a: Alert) => a.ruleName ?? a.ruleId },
    { header: 'since', value: (a: Alert) => formatAge(a.firedAt ?? a.openedAt, now) },
    { header: 'summary', value: (a: Alert) => a.summary },
  ];
}

export function registerAlertCommands(program: Command, ctx: CliContext): void {
  const rules = program.command('rules').description('alert rules (operator)');
  const limitFlag = (name: string, what: string) =>
    new Option(`--${name} <x>`, what).argParser(parser(numberSchema));
  const durationFlag = (name: string, what: string, min = 0) =>
    new Option(`--${name} <duration>`, what).argParser(parser(durationSchema(min, WEEK_S)));

  rules
    .command('add')
    .description('add a threshold rule (--metric with --above or --below) or an --offline rule')
    .option('--metric <name>', 'the metric to watch', parser(metricNameSchema))
    .addOption(limitFlag('above', 'alert when the value is above this'))
    .addOption(limitFlag('below', 'alert when the value is below this'))
    .addOption(limitFlag('clear-below', 'hysteresis: an --above alert clears only below this'))
    .addOption(limitFlag('clear-above', 'hysteresis: a --below alert clears only above this'))
    .addOption(durationFlag('for', 'the condition must hold this long before it fires (e.g. 30s)'))
    .addOption(durationFlag('clear-for', 'the clear condition must hold this long'))
    .addOption(durationFlag('rate', 'compare the change per this duration, not the value', 1))
    .addOption(durationFlag('offline', 'alert when a device is silent this long (e.g. 5m)', 10))
    .addOption(
      new Option('--tag <k=v>', 'only devices with this tag (repeatable)').argParser(
        repeatable(tagPairSchema),
      ),
    )
    .addOption(
      new Option('--device <id>', 'only this device (repeatable)').argParser(
        repeatable(deviceIdSchema),
      ),
    )
    .option('--gateway <id>', 'only this gateway and the devices behind it', parser(deviceIdSchema))
    .addOption(
      new Option('--severity <level>', 'info, warning (default) or critical')
        .choices(severitySchema.options)
        .argParser(parser(severitySchema)),
    )
    .addOption(
      new Option('--webhook <url>', 'POST signed notifications here (repeatable)').argParser(
        repeatable(webhookSchema),
      ),
    )
    .option('--name <name>', 'a name (default: the condition)', parser(nameSchema))
    .option('--page-backfill', 'page on backfilled readings too (default: record them only)')
    .option('--no-flap', 'turn flap suppression off')
    .action(async (flags: RuleFlags, command: Command) => {
      const body = ruleBody(flags);
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const created = await client.post('/api/v1/alert-rules', createdAlertRuleSchema, {
        json: body,
      });
      out.result(created, () => {
        const hasWebhook = created.channels.some((c) => c.type === 'webhook');
        if (hasWebhook) {
          out.note(
            'the webhook secret is shown only now: give it to the receiver to check signatures',
          );
        }
        return renderKeyValue([
          ['id', created.id],
          ['name', created.name],
          ['condition', created.condition],
          ['scope', scopeText(created.scope)],
          ['severity', created.severity],
          ['channels', channelsText(created)],
          ...(hasWebhook ? [['webhook secret', created.webhookSecret] as const] : []),
        ]);
      });
    });

  rules
    .command('list')
    .description('list alert rules')
    .action(async (_flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const list = await client.get('/api/v1/alert-rules', alertRuleListSchema);
      out.result(list, () => (list.length === 0 ? 'no rules' : renderTable(list, ruleColumns())));
    });

  rules
    .command('delete')
    .description('delete a rule; its open alerts resolve')
    .addArgument(new Argument('<id>', 'rule id').argParser(parser(idSchema)))
    .action(async (id: string, _flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const deleted = await client.delete(
        `/api/v1/alert-rules/${encodeURIComponent(id)}`,
        alertRuleSchema,
      );
      out.result(deleted, () => `deleted rule ${deleted.id} (${deleted.name})`);
    });

  const alerts = program.command('alerts').description('alerts: list and acknowledge');

  alerts
    .command('list')
    .description('list alerts, newest first')
    .addOption(
      new Option(
        '--state <state>',
        'open (pending or firing), pending, firing, resolved, cancelled',
      )
        .choices(alertStateSchema.options)
        .argParser(parser(alertStateSchema)),
    )
    .option('--device <id>', 'only this device', parser(deviceIdSchema))
    .option('--rule <id>', 'only this rule', parser(idSchema))
    .option('--limit <n>', 'at most this many alerts (1-500, default 100)', parser(limitSchema))
    .option('--all', 'every matching alert, page after page')
    .action(
      async (
        flags: { state?: string; device?: string; rule?: string; limit?: number; all?: boolean },
        command: Command,
      ) => {
        const out = ctx.output(command);
        const client = await ctx.client(command);
        const items: Alert[] = [];
        let next: string | null = null;
        do {
          const page: AlertPage = await client.get('/api/v1/alerts', alertPageSchema, {
            state: flags.state,
            device: flags.device,
            rule: flags.rule,
            limit: flags.limit ?? (flags.all ? PAGE_SIZE_ALL : undefined),
            ...(next ? { after: next } : {}),
          });
          items.push(...page.items);
          next = page.next;
        } while (flags.all && next);
        out.result({ items, next }, () => {
          if (items.length === 0) return 'no alerts';
          if (next) out.note('more alerts match: pass --all, or --limit up to 500');
          return renderTable(items, alertColumns(ctx.now()));
        });
      },
    );

  alerts
    .command('ack')
    .description('acknowledge an open alert (operator)')
    .addArgument(
      new Argument('<id>', 'alert id (from `outpost alerts list`)').argParser(parser(idSchema)),
    )
    .action(async (id: string, _flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const acked = await client.post(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, alertSchema);
      out.result(
        acked,
        () =>
          `acknowledged ${acked.id} (${acked.ruleName ?? acked.ruleId} on ${acked.device}) as ${acked.acknowledgedBy}`,
      );
    });
}
