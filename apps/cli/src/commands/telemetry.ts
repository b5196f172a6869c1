import { parseDuration, parseInstant } from '@outpost/protocol/duration';
import { metricNameSchema } from '@outpost/protocol/ids';
import { Argument, type Command, Option } from 'commander';
import { z } from 'zod';
import type { CliContext } from '../context.js';
import { deviceIdSchema, parser, repeatable } from '../flags.js';
import { formatTime, renderTable } from '../output.js';

/**
 * `outpost telemetry query|tail` (SURFACES.md): stored readings of one metric over a time
 * range, and live readings as they are accepted.
 */

const instantSchema = z
  .string()
  .refine(
    (t) => parseInstant(t, 0) !== undefined,
    'expected now, -1h, an ISO date-time or epoch ms',
  );
const everySchema = z
  .string()
  .refine((t) => (parseDuration(t) ?? 0) >= 1, 'expected a duration such as 10s, 1m or 1h');
const FNS = ['mean', 'min', 'max', 'sum', 'count', 'first', 'last'] as const;

const seriesSchema = z.object({
  device: z.string(),
  metric: z.string(),
  from: z.string(),
  to: z.string(),
  every: z.string().nullable(),
  fn: z.string().nullable(),
  points: z.array(
    z.object({ time: z.string(), value: z.union([z.number(), z.string(), z.boolean(), z.null()]) }),
  ),
});
export type Series = z.infer<typeof seriesSchema>;

const readingsEventSchema = z.object({
  publisher: z.string(),
  readings: z.array(
    z.object({
      device: z.string(),
      metric: z.string(),
      time: z.string(),
      value: z.union([z.number(), z.string(), z.boolean()]),
      unit: z.string().optional(),
      backfilled: z.boolean().optional(),
    }),
  ),
});
export type LiveReading = z.infer<typeof readingsEventSchema>['readings'][number];

export function seriesText(series: Series, now: number): string {
  if (series.points.length === 0)
    return `no readings of ${series.metric} between ${series.from} and ${series.to}`;
  const header = series.every ? `${series.fn} per ${series.every}` : 'value';
  return renderTable(series.points, [
    { header: 'time', value: (p) => formatTime(p.time, now) },
    { header, value: (p) => (p.value === null ? '-' : String(p.value)) },
  ]);
}

export function readingLine(r: LiveReading): string {
  return `${r.time}  ${r.device}  ${r.metric}=${String(r.value)}${r.unit ? ` ${r.unit}` : ''}${r.backfilled ? '  (backfilled)' : ''}`;
}

export function registerTelemetryCommands(program: Command, ctx: CliContext): void {
  const telemetry = program
    .command('telemetry')
    .description('telemetry: query stored readings, tail live ones');

  telemetry
    .command('query')
    .description('readings of one metric of a device over a time range, raw or aggregated')
    .addArgument(new Argument('<id>', 'device id').argParser(parser(deviceIdSchema)))
    .requiredOption('--metric <metric>', 'metric name', parser(metricNameSchema))
    .option(
      '--from <when>',
      'start: -1h, an ISO date-time or epoch ms',
      parser(instantSchema),
      '-1h',
    )
    .option('--to <when>', 'end', parser(instantSchema), 'now')
    .option('--every <window>', 'aggregate per window, e.g. 1m', parser(everySchema))
    .addOption(new Option('--fn <fn>', 'aggregate function').choices(FNS))
    .option('--limit <n>', 'most rows', parser(z.coerce.number().int().min(1).max(10_000)), 1000)
    .action(
      async (
        id: string,
        flags: {
          metric: string;
          from: string;
          to: string;
          every?: string;
          fn?: string;
          limit: number;
        },
        command: Command,
      ) => {
        const out = ctx.output(command);
        const client = await ctx.client(command);
        const series = await client.get(
          `/api/v1/devices/${encodeURIComponent(id)}/telemetry`,
          seriesSchema,
          {
            metric: flags.metric,
            from: flags.from,
            to: flags.to,
            every: flags.every,
            fn: flags.fn,
            limit: flags.limit,
          },
        );
        out.result(series, () => seriesText(series, ctx.now()));
      },
    );

  telemetry
    .command('tail')
    .description('follow readings as they are accepted (Ctrl-C to stop)')
    .option('--device <id>', 'only this device (repeatable)', repeatable(deviceIdSchema))
    .option('--metric <metric>', 'only this metric (repeatable)', repeatable(metricNameSchema))
    .action(async (flags: { device?: string[]; metric?: string[] }, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      const query = { types: 'readings', device: flags.device, metric: flags.metric };
      for await (const event of client.events('/api/v1/stream', query, abort.signal)) {
        if (event.event === 'dropped') {
          out.note('some readings were dropped: this terminal reads slower than they arrive');
          continue;
        }
        if (event.event !== 'readings') continue;
        const parsed = readingsEventSchema.safeParse(JSON.parse(event.data));
        if (!parsed.success) continue;
        for (const r of parsed.data.readings) out.line(r, () => readingLine(r));
      }
    });
}
