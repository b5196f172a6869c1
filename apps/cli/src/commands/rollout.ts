import { deviceIdSchema } from '@outpost/protocol/ids';
import { rolloutIdSchema } from '@outpost/protocol/ota';
import { tagPairSchema } from '@outpost/protocol/tags';
import { Argument, type Command, Option } from 'commander';
import { z } from 'zod';
import type { ApiClient } from '../api-client.js';
import type { CliContext } from '../context.js';
import { formatDuration } from '../duration.js';
import { CliError, oneLine, UsageError } from '../errors.js';
import { durationSchema, limitSchema, parser, repeatable } from '../flags.js';
import {
  type Rollout,
  type RolloutDevice,
  type RolloutListItem,
  type RolloutProgress,
  rolloutPageSchema,
  rolloutSchema,
  rolloutStreamEventSchema,
  type StateCounts,
  type Wave,
} from '../ota-schemas.js';
import { formatAge, type Output, progressBar, renderTable } from '../output.js';

/**
 * `outpost rollout …` (SURFACES.md): start a rollout in waves, follow it, pause, resume or
 * cancel it. `status --watch` follows the server's event stream and redraws per-wave
 * progress bars until the rollout ends.
 */

const FINISHED = new Set(['completed', 'aborted', 'cancelled']);
const ROLLOUT_STATUSES = ['running', 'paused', 'completed', 'aborted', 'cancelled'] as const;
/** Failed devices listed under the waves (the rest are counted). */
export const FAILURES_SHOWN = 20;
/** The whole rollout is read again this often while watching, in case events were missed. */
const REFRESH_MS = 15_000;

const rolloutIdArgument = () =>
  new Argument('<id>', 'rollout id').argParser(parser(rolloutIdSchema));

export type TargetSpec =
  | { kind: 'tag'; tag: readonly [string, string] }
  | { kind: 'device' | 'gateway'; id: string };

/** `--target tag=k=v`, `--target device=ID`, `--target gateway=ID` (children of a gateway). */
export const targetSpecSchema = z.string().transform((text, ctx): TargetSpec => {
  const eq = text.indexOf('=');
  const kind = eq === -1 ? text : text.slice(0, eq);
  const rest = text.slice(eq + 1);
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (eq === -1) return fail('expected tag=KEY=VALUE, device=ID or gateway=ID');
  if (kind === 'tag') {
    const pair = tagPairSchema.safeParse(rest);
    return pair.success ? { kind: 'tag', tag: pair.data } : fail('expected tag=KEY=VALUE');
  }
  if (kind === 'device' || kind === 'gateway') {
    const id = deviceIdSchema.safeParse(rest);
    if (!id.success) return fail(`${kind} ids match ^[a-z0-9][a-z0-9._-]{0,63}$`);
    return { kind, id: id.data };
  }
  return fail(`unknown target kind ${JSON.stringify(kind)}: use tag=, device= or gateway=`);
});

/** The API's target: tags all must match; devices and children of gateways are added. */
export function targetBody(specs: readonly TargetSpec[]) {
  const tags: Record<string, string> = {};
  const devices: string[] = [];
  const gateways: string[] = [];
  for (const spec of specs) {
    if (spec.kind === 'tag') {
      const [key, value] = spec.tag;
      if (Object.hasOwn(tags, key) && tags[key] !== value) {
        throw new UsageError(`--target tag=${key}=… is given twice with different values`);
      }
      tags[key] = value;
    } else (spec.kind === 'device' ? devices : gateways).push(spec.id);
  }
  return {
    ...(Object.keys(tags).length > 0 ? { tags } : {}),
    ...(devices.length > 0 ? { devices: [...new Set(devices)] } : {}),
    ...(gateways.length > 0 ? { gateways: [...new Set(gateways)] } : {}),
  };
}

/** `5,25,100`: cumulative percentages, ascending, ending at 100. */
export const wavesSchema = z.string().transform((text, ctx) => {
  const waves = text.split(',').map((p) => Number(p.trim()));
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (waves.some((p) => !Number.isFinite(p) || p <= 0 || p > 100)) {
    return fail('expected percentages between 0 and 100, such as 5,25,100');
  }
  if (waves.some((p, i) => i > 0 && p <= waves[i - 1]!)) return fail('waves must be ascending');
  if (waves.at(-1) !== 100) return fail('the last wave must be 100');
  if (waves.length > 20) return fail('at most 20 waves');
  return waves;
});

const minDevicesSchema = z.coerce
  .number('expected a whole number')
  .int('expected a whole number')
  .min(1, 'at least 1')
  .max(1_000_000, 'at most 1000000');

const rateSchema = z.coerce
  .number('expected a number between 0 and 1')
  .min(0, 'expected a number between 0 and 1')
  .max(1, 'expected a number between 0 and 1');

function finished(c: StateCounts): number {
  return c.succeeded + c.failed + c.rolledBack;
}

function countsText(c: StateCounts): string {
  const parts = [`${c.succeeded} ok`];
  if (c.failed > 0) parts.push(`${c.failed} failed`);
  if (c.rolledBack > 0) parts.push(`${c.rolledBack} rolled back`);
  const updating = c.offered + c.updating;
  if (updating > 0) parts.push(`${updating} updating`);
  if (c.pending > 0) parts.push(`${c.pending} pending`);
  return parts.join(', ');
}

function waveText(w: Wave, now: number): string {
  const soak =
    w.phase === 'soaking' && w.soakUntil
      ? ` (next wave in ${formatDuration(Math.max(0, Math.ceil((Date.parse(w.soakUntil) - now) / 1000)))})`
      : '';
  return `${w.phase}${soak}`;
}

const devicesText = (n: number, width: number) =>
  `${String(n).padStart(width)} ${n === 1 ? 'device ' : 'devices'}`;

/** The rollout for people: header, one line per wave with a bar, failed devices and why. */
export function renderRollout(
  r: RolloutProgress,
  failures: readonly RolloutDevice[],
  now: number,
): string {
  const waveCount = r.waves.length;
  const lines = [
    `rollout ${r.id}: ${r.component} ${r.version}, ${r.status}${FINISHED.has(r.status) ? '' : `, wave ${r.currentWave + 1} of ${waveCount}`}`,
  ];
  if (r.reason) lines.push(`  ${oneLine(r.reason, 200)}`);
  const width = String(r.totals.devices).length;
  for (const w of r.waves) {
    lines.push(
      `  wave ${String(w.index + 1).padStart(2)} ${`${w.percent}%`.padStart(5)}  ${devicesText(w.devices, width)}  ${progressBar(w.devices === 0 ? 1 : finished(w.counts) / w.devices)}  ${waveText(w, now).padEnd(10)} ${countsText(w.counts)}`,
    );
  }
  lines.push(
    `  total         ${devicesText(r.totals.devices, width)}  ${progressBar(r.totals.devices === 0 ? 1 : r.totals.finished / r.totals.devices)}  ${countsText(r.totals)}`,
  );
  if (failures.length > 0) {
    lines.push('failed devices:');
    for (const d of failures.slice(0, FAILURES_SHOWN)) {
      lines.push(`  ${d.deviceId}  ${d.state}  ${oneLine(d.reason ?? '', 120)}`);
    }
    if (failures.length > FAILURES_SHOWN) {
      lines.push(`  and ${failures.length - FAILURES_SHOWN} more (--json lists them all)`);
    }
  }
  return lines.join('\n');
}

/** One line per change, for a log or a pipe. */
export function rolloutLine(r: RolloutProgress): string {
  const wave = r.waves[r.currentWave];
  return `rollout ${r.id}: ${r.status}, wave ${r.currentWave + 1}/${r.waves.length} ${wave?.phase ?? ''}, ${countsText(r.totals)}`;
}

export function rolloutColumns(now: number) {
  return [
    { header: 'id', value: (r: RolloutListItem) => r.id },
    { header: 'component', value: (r: RolloutListItem) => r.component },
    { header: 'version', value: (r: RolloutListItem) => r.version },
    { header: 'status', value: (r: RolloutListItem) => r.status },
    {
      header: 'wave',
      value: (r: RolloutListItem) => `${r.currentWave + 1}/${r.plan.waves.length}`,
    },
    { header: 'created', value: (r: RolloutListItem) => formatAge(r.createdAt, now) },
  ];
}

const isFailure = (d: RolloutDevice) => d.state === 'failed' || d.state === 'rolled_back';

/** Ends with an error for a rollout that did not complete, so scripts can tell. */
function endOf(r: RolloutProgress): void {
  if (r.status === 'aborted' || r.status === 'cancelled') {
    throw new CliError('conflict', `rollout_${r.status}`, `rollout ${r.id} ${r.status}`, {
      ...(r.reason ? { hint: oneLine(r.reason, 200) } : {}),
    });
  }
}

/**
 * Follows a rollout on the event stream until it ends, redrawing it on every change.
 * Subscribes first and reads the rollout after, so no change falls between the two.
 */
async function watch(ctx: CliContext, out: Output, client: ApiClient, id: string) {
  const path = `/api/v1/rollouts/${encodeURIComponent(id)}`;
  let failures = new Map<string, RolloutDevice>();
  let current: RolloutProgress | undefined;
  let last = '';
  const show = () => {
    if (!current) return;
    const list = [...failures.values()];
    if (out.interactive) {
      out.frame(current, () => renderRollout(current!, list, ctx.now()));
    } else {
      const line = rolloutLine(current);
      if (line !== last) out.frame(current, () => line);
      last = line;
    }
  };
  const refresh = async () => {
    const full: Rollout = await client.get(path, rolloutSchema);
    current = full;
    failures = new Map(full.devices.filter(isFailure).map((d) => [d.deviceId, d]));
    show();
  };

  while (!current || !FINISHED.has(current.status)) {
    const stop = new AbortController();
    const events = client.events('/api/v1/stream', { types: 'rollouts' }, stop.signal);
    const next = () =>
      Promise.race([
        events.next(),
        new Promise<'refresh'>((resolve) => setTimeout(resolve, REFRESH_MS, 'refresh').unref()),
      ]);
    let pending = next();
    try {
      await refresh();
      while (!FINISHED.has(current!.status)) {
        const item = await pending;
        if (item === 'refresh') {
          await refresh();
          pending = next();
          continue;
        }
        if (item.done) break;
        pending = next();
        if (item.value.event !== 'rollouts') continue;
        const event = rolloutStreamEventSchema.safeParse(JSON.parse(item.value.data));
        if (!event.success || event.data.rolloutId !== id) continue;
        if (event.data.kind === 'progress') current = event.data.rollout;
        else if (isFailure(event.data.device)) {
          failures.set(event.data.device.deviceId, event.data.device);
        } else failures.delete(event.data.device.deviceId);
        show();
      }
    } finally {
      stop.abort();
      await events.return(undefined);
    }
    // The stream ended (a restart, a proxy): follow again after a moment.
    if (!FINISHED.has(current!.status)) await new Promise((r) => setTimeout(r, 1000));
  }
  return current!;
}

interface CreateFlags {
  firmware: string;
  target: TargetSpec[];
  waves: number[];
  soak?: number;
  abortFailureRate?: number;
  minDevices?: number;
  offerTimeout?: number;
  updateTimeout?: number;
  rollback?: boolean;
  watch?: boolean;
}

export function createBody(flags: CreateFlags) {
  return {
    firmwareId: flags.firmware,
    target: targetBody(flags.target),
    waves: flags.waves,
    ...(flags.soak !== undefined ? { soakSeconds: flags.soak } : {}),
    ...(flags.abortFailureRate !== undefined ? { abortFailureRate: flags.abortFailureRate } : {}),
    ...(flags.minDevices !== undefined ? { minDevices: flags.minDevices } : {}),
    ...(flags.offerTimeout !== undefined ? { offerTimeoutSeconds: flags.offerTimeout } : {}),
    ...(flags.updateTimeout !== undefined ? { updateTimeoutSeconds: flags.updateTimeout } : {}),
    ...(flags.rollback ? { rollback: true } : {}),
  };
}

export function registerRolloutCommands(program: Command, ctx: CliContext): void {
  const rollout = program
    .command('rollout')
    .description('roll firmware out in waves; follow, pause, resume, cancel (role firmware)');

  rollout
    .command('create')
    .description('start a rollout of a firmware to target devices, wave after wave')
    .requiredOption(
      '--firmware <id>',
      'firmware id (from `outpost firmware list`)',
      parser(rolloutIdSchema),
    )
    .requiredOption(
      '--target <spec>',
      'tag=KEY=VALUE (all must match), device=ID or gateway=ID (its children); repeatable',
      repeatable(targetSpecSchema),
    )
    .requiredOption('--waves <list>', 'cumulative percentages, e.g. 5,25,100', parser(wavesSchema))
    .option(
      '--soak <duration>',
      'watch each finished wave this long (default 10m)',
      parser(durationSchema(0, 30 * 86_400)),
    )
    .option(
      '--abort-failure-rate <rate>',
      'abort when failed/finished exceeds this (default 0.1)',
      parser(rateSchema),
    )
    .option(
      '--min-devices <n>',
      '…once this many devices finished (default 5)',
      parser(minDevicesSchema),
    )
    .option(
      '--offer-timeout <duration>',
      'a device that does not answer an offer fails after this',
      parser(durationSchema(1, 30 * 86_400)),
    )
    .option(
      '--update-timeout <duration>',
      'a device silent this long while updating fails',
      parser(durationSchema(1, 30 * 86_400)),
    )
    .option('--rollback', 'offer it as a rollback target: devices install it even if older')
    .option('--watch', 'then follow it until it ends')
    .action(async (flags: CreateFlags, command: Command) => {
      const body = createBody(flags);
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const created = await client.post('/api/v1/rollouts', rolloutSchema, { json: body });
      if (flags.watch) {
        out.note(`rollout ${created.id} started`);
        endOf(await watch(ctx, out, client, created.id));
        return;
      }
      out.result(created, () =>
        renderRollout(created, created.devices.filter(isFailure), ctx.now()),
      );
    });

  rollout
    .command('list')
    .description('rollouts, newest first')
    .addOption(
      new Option('--status <status>', 'only rollouts in this state')
        .choices(ROLLOUT_STATUSES)
        .argParser(parser(z.enum(ROLLOUT_STATUSES))),
    )
    .option('--limit <n>', 'at most this many (1-500, default 50)', parser(limitSchema))
    .action(async (flags: { status?: string; limit?: number }, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const page = await client.get('/api/v1/rollouts', rolloutPageSchema, {
        status: flags.status,
        limit: flags.limit,
      });
      out.result(page, () =>
        page.items.length === 0
          ? 'no rollouts'
          : renderTable(page.items, rolloutColumns(ctx.now())),
      );
    });

  rollout
    .command('status')
    .description('progress per wave and the devices that failed, with reasons')
    .addArgument(rolloutIdArgument())
    .option('--watch', 'follow it with progress bars until it ends')
    .action(async (id: string, flags: { watch?: boolean }, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      if (flags.watch) {
        endOf(await watch(ctx, out, client, id));
        return;
      }
      const r = await client.get(`/api/v1/rollouts/${encodeURIComponent(id)}`, rolloutSchema);
      out.result(r, () => renderRollout(r, r.devices.filter(isFailure), ctx.now()));
    });

  for (const [action, what] of [
    ['pause', 'pause: no new offers or timeouts until resumed'],
    ['resume', 'resume a paused rollout'],
    ['cancel', 'cancel: no further offers; devices updating now finish'],
  ] as const) {
    rollout
      .command(action)
      .description(what)
      .addArgument(rolloutIdArgument())
      .action(async (id: string, _flags: object, command: Command) => {
        const out = ctx.output(command);
        const client = await ctx.client(command);
        const r = await client.post(
          `/api/v1/rollouts/${encodeURIComponent(id)}/${action}`,
          rolloutSchema,
        );
        out.result(r, () => rolloutLine(r));
      });
  }
}
