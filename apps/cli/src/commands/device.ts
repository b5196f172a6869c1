import { readFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import type { DeviceKind } from '@outpost/protocol/ids';
import { signEnrollmentProof } from '@outpost/signing/enrollment';
import { generateKeyPair } from '@outpost/signing/keys';
import { Argument, type Command, Option } from 'commander';
import QRCode from 'qrcode';
import {
  type Device,
  type DevicePage,
  devicePageSchema,
  deviceSchema,
  enrollmentCreatedSchema,
  enrollReplySchema,
  type ImportErrors,
  importErrorsSchema,
  importResultSchema,
} from '../api-schemas.js';
import type { CliContext } from '../context.js';
import { CREDENTIALS_FILE, credentialsFile, KEY_FILE } from '../credentials-file.js';
import { formatDuration } from '../duration.js';
import { CliError, oneLine, UsageError } from '../errors.js';
import {
  algSchema,
  deviceIdSchema,
  deviceKindSchema,
  durationSchema,
  limitSchema,
  listStatusSchema,
  nameSchema,
  parser,
  repeatable,
  searchSchema,
  type TagPair,
  tagPairSchema,
  tagsFromPairs,
} from '../flags.js';
import {
  formatAge,
  formatTags,
  formatTime,
  type Output,
  renderKeyValue,
  renderTable,
} from '../output.js';
import {
  exists,
  fileError,
  makePrivateDir,
  stagePrivateFile,
  writePrivateFile,
} from '../private-files.js';

/** `outpost device …`: enrollment, import, listing, inspection and revocation (SURFACES.md). */

const MAX_ENROLLMENT_TTL_S = 30 * 24 * 3600;
/** How many refused import rows are printed before "and N more". */
export const IMPORT_ERRORS_SHOWN = 20;
/** An import is one request that may validate and write 100,000 rows. */
const IMPORT_TIMEOUT_MS = 5 * 60_000;
const PAGE_SIZE_ALL = 500;

const idArgument = () => new Argument('<id>', 'device id').argParser(parser(deviceIdSchema));
const kindOption = () =>
  new Option('--kind <kind>', 'device or gateway')
    .choices(deviceKindSchema.options)
    .argParser(parser(deviceKindSchema));
const gatewayOption = () =>
  new Option('--gateway <id>', 'parent gateway of a child device').argParser(
    parser(deviceIdSchema),
  );
const tagOption = (what: string) =>
  new Option('--tag <k=v>', `${what} (repeatable)`).argParser(repeatable(tagPairSchema));

interface EnrollmentFlags {
  kind?: DeviceKind;
  gateway?: string;
  tag?: TagPair[];
  name?: string;
  ttl?: number;
}

function enrollmentBody(id: string, flags: EnrollmentFlags) {
  if (flags.kind === 'gateway' && flags.gateway) {
    throw new UsageError(
      'a gateway cannot have a parent gateway',
      'drop --gateway or --kind gateway',
    );
  }
  const tags = tagsFromPairs(flags.tag);
  return {
    deviceId: id,
    kind: flags.kind ?? 'device',
    ...(flags.gateway ? { gateway: flags.gateway } : {}),
    ...(flags.name ? { name: flags.name } : {}),
    ...(Object.keys(tags).length > 0 ? { tags } : {}),
    ...(flags.ttl ? { ttlSeconds: flags.ttl } : {}),
  };
}

export function registerDeviceCommands(program: Command, ctx: CliContext): void {
  const device = program.command('device').description('enroll, import, list and revoke devices');

  device
    .command('enroll-token')
    .description('create a single-use enrollment token for a device (PROTOCOL.md §2)')
    .addArgument(idArgument())
    .addOption(kindOption())
    .addOption(gatewayOption())
    .addOption(tagOption('tag for a new device'))
    .option('--name <name>', 'display name for a new device', parser(nameSchema))
    .option(
      '--ttl <duration>',
      'how long the token is valid (e.g. 30m, 24h, 7d; default 24h)',
      parser(durationSchema(60, MAX_ENROLLMENT_TTL_S)),
    )
    .option('--qr', 'also print the token as a QR code')
    .action(async (id: string, flags: EnrollmentFlags & { qr?: boolean }, command: Command) => {
      const body = enrollmentBody(id, flags);
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const created = await client.post('/api/v1/enrollments', enrollmentCreatedSchema, {
        json: body,
      });
      const qr = flags.qr
        ? await QRCode.toString(created.token, { type: 'terminal', small: true })
        : undefined;
      const expiresIn = Math.max(0, Math.round((Date.parse(created.expiresAt) - ctx.now()) / 1000));
      out.result({ ...created, ...(qr ? { qr } : {}) }, () => {
        const view = renderKeyValue([
          ['device', created.deviceId],
          ['kind', created.kind],
          ...(created.gateway ? [['gateway', created.gateway] as const] : []),
          [
            'expires',
            `${formatTime(created.expiresAt, ctx.now())} (in ${formatDuration(expiresIn)})`,
          ],
          ['token', created.token],
        ]);
        return qr ? `${view}\n\n${qr.trimEnd()}` : view;
      });
    });

  device
    .command('import')
    .description('import devices from a CSV (.csv) or JSON (.json) file, all or nothing')
    .argument('<file>', 'devices to import: .csv with an id column, or .json')
    .action(async (file: string, _flags: object, command: Command) => {
      const contentType = importContentType(file);
      const out = ctx.output(command);
      const client = await ctx.client(command);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        throw fileError(err, file, 'cannot read');
      }
      if (contentType === 'application/json') checkJson(file, text);
      out.progress(`importing ${file} (${Math.ceil(Buffer.byteLength(text) / 1024)} KiB)…`);
      let result: { imported: number };
      try {
        result = await client.request('POST', '/api/v1/devices/import', {
          schema: importResultSchema,
          body: { text, contentType },
          timeoutMs: Math.max(IMPORT_TIMEOUT_MS, ctx.environment().timeoutMs),
        });
      } catch (err) {
        throw importRefusal(err, file);
      } finally {
        out.progressDone();
      }
      out.result(
        result,
        () => `imported ${result.imported} device${result.imported === 1 ? '' : 's'}`,
      );
    });

  device
    .command('list')
    .description('list devices, filtered by tag, status, kind, gateway or text')
    .addOption(tagOption('only devices with this tag'))
    .addOption(
      new Option('--status <status>', 'connectivity or registry status')
        .choices(listStatusSchema.options)
        .argParser(parser(listStatusSchema)),
    )
    .addOption(kindOption())
    .addOption(gatewayOption())
    .option('--search <text>', 'text in the id or name', parser(searchSchema))
    .option('--limit <n>', 'at most this many devices (1-500, default 100)', parser(limitSchema))
    .option('--all', 'every matching device, page after page')
    .action(async (flags: ListFlags, command: Command) => {
      const query = listQuery(flags);
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const items: Device[] = [];
      let next: string | null = null;
      do {
        const page: DevicePage = await client.get('/api/v1/devices', devicePageSchema, {
          ...query,
          ...(next ? { after: next } : {}),
        });
        items.push(...page.items);
        next = page.next;
        if (flags.all) out.progress(`${items.length} devices…`);
      } while (flags.all && next);
      out.progressDone();
      out.result({ items, next }, () => {
        if (items.length === 0) return 'no devices';
        if (next) out.note(`more devices match: pass --all, or --limit up to 500`);
        return renderTable(items, deviceColumns(ctx.now()));
      });
    });

  device
    .command('show')
    .description('a device: record, connectivity, keys, outbox')
    .addArgument(idArgument())
    .action(async (id: string, _flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const view = await client.get(`/api/v1/devices/${encodeURIComponent(id)}`, deviceSchema);
      out.result(view, () => renderKeyValue(devicePairs(view, ctx.now())));
    });

  device
    .command('revoke')
    .description('revoke a device: its sessions are closed and its keys refused')
    .addArgument(idArgument())
    .action(async (id: string, _flags: object, command: Command) => {
      const out = ctx.output(command);
      const client = await ctx.client(command);
      const view = await client.post(
        `/api/v1/devices/${encodeURIComponent(id)}/revoke`,
        deviceSchema,
      );
      out.result(view, () => `revoked ${view.id}`);
    });

  device
    .command('credentials')
    .description(
      'for a device that cannot make keys: make its key pair here, enroll it, and write its files to DIR',
    )
    .addArgument(idArgument())
    .requiredOption('--out <dir>', `directory for ${KEY_FILE} and ${CREDENTIALS_FILE}`)
    .addOption(kindOption())
    .addOption(gatewayOption())
    .addOption(tagOption('tag for a new device'))
    .option('--name <name>', 'display name for a new device', parser(nameSchema))
    .addOption(
      new Option('--alg <alg>', 'key algorithm')
        .choices(algSchema.options)
        .default('EdDSA')
        .argParser(parser(algSchema)),
    )
    .option('--force', `replace ${KEY_FILE} and ${CREDENTIALS_FILE} if they exist`)
    .action(async (id: string, flags: CredentialsFlags, command: Command) => {
      await deviceCredentials(ctx, command, id, flags);
    });
}

interface ListFlags {
  tag?: TagPair[];
  status?: string;
  kind?: string;
  gateway?: string;
  search?: string;
  limit?: number;
  all?: boolean;
}

interface CredentialsFlags extends EnrollmentFlags {
  out: string;
  alg: 'EdDSA' | 'ES256';
  force?: boolean;
}

export function listQuery(flags: ListFlags) {
  const tags = tagsFromPairs(flags.tag);
  return {
    tag: Object.entries(tags).map(([k, v]) => `${k}=${v}`),
    status: flags.status,
    kind: flags.kind,
    gateway: flags.gateway,
    q: flags.search,
    limit: flags.limit ?? (flags.all ? PAGE_SIZE_ALL : undefined),
  };
}

export function deviceColumns(now: number) {
  return [
    { header: 'id', value: (d: Device) => d.id },
    { header: 'kind', value: (d: Device) => d.kind },
    { header: 'state', value: (d: Device) => d.connectivity.state },
    { header: 'gateway', value: (d: Device) => d.gateway ?? '-' },
    { header: 'last seen', value: (d: Device) => formatAge(d.connectivity.lastSeen, now) },
    { header: 'tags', value: (d: Device) => formatTags(d.tags) },
  ];
}

export function devicePairs(d: Device, now: number): [string, string][] {
  const pairs: [string, string][] = [
    ['id', d.id],
    ['name', d.name ?? '-'],
    ['kind', d.kind],
    ['status', d.status],
    ['state', d.connectivity.state],
    ['gateway', d.gateway ?? '-'],
    ['tags', formatTags(d.tags) || '-'],
    ['last seen', d.connectivity.lastSeen ? formatTime(d.connectivity.lastSeen, now) : 'never'],
  ];
  if (d.connectivity.disconnectReason) {
    pairs.push(['disconnect reason', d.connectivity.disconnectReason]);
  }
  if (d.outbox) {
    pairs.push([
      'outbox',
      `${d.outbox.pending} pending, ${d.outbox.bytes} bytes, oldest ${formatDuration(d.outbox.oldestS)}, ${d.outbox.dropped} dropped`,
    ]);
  }
  if (d.policy) pairs.push(['payload signing', d.policy.payloadSigning]);
  pairs.push([
    'keys',
    d.keys.length === 0 ? '-' : d.keys.map((k) => `${k.kid} (${k.alg})`).join(', '),
  ]);
  if (d.desiredConfigVersion !== undefined) {
    pairs.push(['desired config', `version ${d.desiredConfigVersion}`]);
  }
  pairs.push(['reported', formatTime(d.reportedAt, now)]);
  pairs.push(['created', formatTime(d.createdAt, now)]);
  pairs.push(['updated', formatTime(d.updatedAt, now)]);
  if (d.revokedAt) pairs.push(['revoked', formatTime(d.revokedAt, now)]);
  return pairs;
}

function importContentType(file: string): 'text/csv' | 'application/json' {
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'text/csv';
  if (ext === '.json') return 'application/json';
  throw new UsageError(`cannot tell the format of ${file}`, 'name the file *.csv or *.json');
}

function checkJson(file: string, text: string): void {
  try {
    JSON.parse(text);
  } catch (err) {
    throw new CliError('invalid', 'import_invalid', `${file} is not valid JSON`, {
      hint: err instanceof Error ? oneLine(err.message) : 'check the file',
    });
  }
}

/** `line N (id): message` for each refused row, then how many were left out. */
export function importErrorLines(report: ImportErrors, shown = IMPORT_ERRORS_SHOWN): string[] {
  const lines = report.errors
    .slice(0, shown)
    .map(
      (e) =>
        `line ${e.line}${e.id !== undefined ? ` (${oneLine(e.id, 80)})` : ''}: ${oneLine(e.message)}`,
    );
  const rest = report.errorCount - lines.length;
  if (rest > 0) lines.push(`and ${rest} more`);
  return lines;
}

/** An `import_invalid` refusal, listing the rows; other errors pass unchanged. */
function importRefusal(err: unknown, file: string): unknown {
  if (!(err instanceof CliError) || err.code !== 'import_invalid') return err;
  const report = importErrorsSchema.safeParse(err.details);
  if (!report.success) return err;
  const n = report.data.errorCount;
  return new CliError(
    'invalid',
    'import_invalid',
    `import of ${file} refused, nothing was written: ${n} error${n === 1 ? '' : 's'}`,
    {
      hint: 'fix the lines below and import the whole file again',
      more: importErrorLines(report.data),
      details: report.data,
    },
  );
}

/**
 * PROTOCOL.md §2.4: the key pair is made here, the proof signed here, and only the public
 * key leaves this machine. The private key is staged before enrolling and put in place once
 * enrollment succeeded, so a failure leaves no key for a device that does not have it.
 */
async function deviceCredentials(
  ctx: CliContext,
  command: Command,
  id: string,
  flags: CredentialsFlags,
): Promise<void> {
  const body = enrollmentBody(id, flags);
  const out = ctx.output(command);
  const dir = resolve(flags.out);
  const keyPath = join(dir, KEY_FILE);
  const credentialsPath = join(dir, CREDENTIALS_FILE);
  const client = await ctx.client(command);
  if (!flags.force) {
    for (const path of [keyPath, credentialsPath]) {
      if (await exists(path)) {
        throw new CliError('conflict', 'file_exists', `${path} already exists`, {
          hint: 'choose another --out directory, or pass --force to replace the files',
        });
      }
    }
  }
  await makePrivateDir(dir);
  const pair = await generateKeyPair(flags.alg);
  const stagedKey = await stagePrivateFile(
    keyPath,
    `${JSON.stringify(pair.privateJwk, null, 2)}\n`,
  );
  let committed = false;
  try {
    const created = await client.post('/api/v1/enrollments', enrollmentCreatedSchema, {
      json: body,
    });
    const proof = await signEnrollmentProof(pair.privateJwk, {
      jti: created.jti,
      deviceId: created.deviceId,
    });
    const reply = await client.request('POST', '/api/v1/enroll', {
      schema: enrollReplySchema,
      auth: false,
      body: { json: { token: created.token, publicKey: pair.publicJwk, proof: proof.token } },
    });
    if (reply.kid !== pair.kid) {
      throw new CliError(
        'internal',
        'kid_mismatch',
        `the server registered key ${reply.kid}, not ${pair.kid}`,
        {
          hint: `revoke the device with \`outpost device revoke ${id}\` and report this`,
        },
      );
    }
    try {
      await stagedKey.commit(flags.force === true);
    } catch (err) {
      committed = true; // keep the staged key: the device is enrolled with it
      throw new CliError(
        'internal',
        'file_error',
        `${id} is enrolled, but ${keyPath} could not be written`,
        {
          hint: `its private key is in ${stagedKey.path}; move it there yourself`,
          cause: err,
        },
      );
    }
    committed = true;
    const credentials = credentialsFile(reply, pair, new Date(ctx.now()));
    await writePrivateFile(credentialsPath, `${JSON.stringify(credentials, null, 2)}\n`, {
      overwrite: flags.force === true,
    });
    printCredentials(out, reply.device, { ...pair, keyPath, credentialsPath });
  } finally {
    if (!committed) await stagedKey.discard();
  }
}

function printCredentials(
  out: Output,
  device: Device,
  files: { kid: string; alg: string; keyPath: string; credentialsPath: string },
): void {
  out.result(
    {
      deviceId: device.id,
      kid: files.kid,
      alg: files.alg,
      keyFile: files.keyPath,
      credentialsFile: files.credentialsPath,
      device,
    },
    () =>
      renderKeyValue([
        ['device', device.id],
        ['status', device.status],
        ['kid', files.kid],
        ['alg', files.alg],
        ['private key', `${files.keyPath} (keep it secret; it was not sent anywhere)`],
        ['credentials', files.credentialsPath],
      ]),
  );
}
