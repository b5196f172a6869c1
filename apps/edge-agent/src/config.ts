import { readFile } from 'node:fs/promises';
import { durationSchema } from '@outpost/protocol/duration';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { AgentError } from './errors.js';
import { serialFlashConfigSchema } from './ota/serial-flash.js';
import { WHEN_FULL_POLICIES } from './outbox/outbox.js';
import { batchConfigSchema } from './pipeline/batcher.js';
import { pipelineSchema } from './pipeline/filters.js';
import { sourcesConfigSchema } from './sources/source-config.js';

/**
 * agent.yaml (SURFACES.md "Edge agent"), validated once at start with zod. Every problem is
 * listed at once with its place in the file (`agent.yaml:12:7 outbox.maxBytes: ...`), or the
 * AGENT_* variable it came from. Defaults live next to each key. `outpost-agent schema`
 * prints the JSON Schema of this file for editors.
 */

export const DEFAULT_CONFIG_PATH = '/etc/outpost-agent/agent.yaml';
export const DEFAULT_DATA_DIR = '/var/lib/outpost-agent';

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/;
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};

/** `512MiB`, `64KiB`, `1GB`, or a number of bytes; undefined if not a size. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text.trim());
  if (!m) return undefined;
  const bytes = Math.round(Number(m[1]) * SIZE_UNITS[m[2] ?? 'B']!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export const sizeSchema = z
  .union([z.string().max(32), z.number().int().nonnegative()])
  .transform((value, ctx) => {
    const bytes = typeof value === 'number' ? value : parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a size such as 512MiB, 64KiB or 1GB' });
      return z.NEVER;
    }
    return bytes;
  });

const listenSchema = z
  .string()
  .max(300)
  .regex(/^(?:\[[0-9A-Fa-f:.]+\]|[^:\s[\]]+):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:9464');

const positiveDuration = durationSchema.refine((ms) => ms > 0, 'must be more than 0');

export const outboxConfigSchema = z.strictObject({
  /** Bound of what waits for the cloud (the packs' bytes). */
  maxBytes: sizeSchema.default(512 * 2 ** 20),
  whenFull: z.enum(WHEN_FULL_POLICIES).default('drop-oldest'),
  /** `full`: fsync every commit (survives power loss); `normal`: survives crashes only. */
  sync: z.enum(['full', 'normal']).default('full'),
  /** Bound of the quarantine of refused batches. */
  quarantineMaxBytes: sizeSchema.default(64 * 2 ** 20),
  /** `downsample-oldest`: window of the first level, growth per level, levels. */
  downsample: z
    .strictObject({
      every: positiveDuration.default(60_000),
      factor: z.number().int().min(2).max(100).default(10),
      maxLevel: z.number().int().min(1).max(8).default(3),
    })
    .prefault({}),
});

export const uplinkConfigSchema = z.strictObject({
  /** MQTT URL of the ingest; defaults to the endpoint given at enrollment. */
  mqtt: z
    .string()
    .max(2048)
    .regex(/^mqtts?:\/\/[^\s/]+(:\d+)?\/?$/, 'expected mqtt://host:port or mqtts://host:port')
    .optional(),
  /** Batches in flight (sent, not yet acknowledged). */
  window: z.number().int().min(1).max(100).default(16),
  /** A batch older than this when sent carries `bf: true` (PROTOCOL.md §5). */
  backfillAfter: durationSchema.default(10_000),
  /** No PUBACK for this long: reconnect. */
  ackTimeout: positiveDuration.default(30_000),
  /** Lifetime of each device JWT (PROTOCOL.md §3: at most 24 h). */
  tokenLifetime: positiveDuration
    .refine((ms) => ms <= 24 * 3600_000, 'at most 24h')
    .default(3600_000),
  keepalive: positiveDuration.default(30_000),
  backoff: z
    .strictObject({
      initial: positiveDuration.default(500),
      max: positiveDuration.default(60_000),
      /**
       * A connection up this long starts the backoff over. One the broker closes sooner (too
       * many refusals, a takeover) counts as a failed attempt, so the delays keep growing.
       */
      stableAfter: positiveDuration.default(30_000),
    })
    .prefault({}),
  http: z
    .strictObject({
      /** Send batches over `POST /api/v1/telemetry` while MQTT is down. */
      fallback: z.boolean().default(true),
      /** ...once it has been down this long. */
      after: durationSchema.default(30_000),
    })
    .prefault({}),
  /** Accept a self-signed certificate on mqtts (a development ingest). */
  insecureTls: z.boolean().default(false),
});

export const clockConfigSchema = z.strictObject({
  /** A wall-clock move this much unlike the monotonic clock is a jump. */
  jumpTolerance: positiveDuration.default(1000),
  /** Largest difference to the ingest's clock still called synced. */
  tolerance: positiveDuration.default(2000),
  /** How often the sync evidence is looked at. */
  checkEvery: positiveDuration.default(60_000),
  /** systemd-timesyncd's flag file; `false` to ignore it. */
  timesyncd: z
    .union([z.string().min(1), z.literal(false)])
    .default('/run/systemd/timesync/synchronized'),
  /** Compare with the ingest's HTTP `Date` header. */
  ingestDate: z.boolean().default(true),
});

/** OTA updates of the agent itself and of its children (PROTOCOL.md §8). */
export const otaConfigSchema = z.strictObject({
  /** Where versions of the agent live: `versions/<version>/`, `current` → the running one. */
  installRoot: z.string().min(1).max(1024).default('/opt/outpost-agent'),
  /** The agent's entry file inside a version directory (a bundle of the built workspace). */
  entry: z
    .string()
    .min(1)
    .max(512)
    .regex(/^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$)).+$/, 'a relative path without ..')
    .default('apps/edge-agent/dist/main.js'),
  /** The gateway's hardware id, matched with a manifest's `hardware`; default `<os>-<arch>`. */
  hardware: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
      'expected a hardware id such as rpi4 or linux-arm64',
    )
    .optional(),
  /** How long a new version has to reach the cloud and hear from its sources. */
  trialWindow: positiveDuration.default(120_000),
  /** Starts of a new version on trial before the launcher switches back (a crash loop). */
  maxBoots: z.number().int().min(1).max(20).default(3),
  /** Bound of what one bundle unpacks to. */
  maxUnpackedBytes: sizeSchema.default(2 * 2 ** 30),
  maxUnpackedEntries: z.number().int().min(1).max(1_000_000).default(200_000),
  /**
   * RFC 7638 thumbprints (`kid`) of the only release keys this gateway will ever trust.
   * Unset: the keys of the enrollment reply, then each `keys.release` set the service sends.
   * Set: the same, but a key not listed here is ignored, so a compromised service cannot
   * make the gateway accept firmware signed by a key of its own (`outpost keys add` prints
   * the thumbprint).
   */
  releaseKeyPins: z
    .array(z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected an RFC 7638 SHA-256 thumbprint'))
    .min(1)
    .max(64)
    .optional(),
  /** Flashing serial child devices through their bootloader (PROTOCOL.md §10). */
  serial: serialFlashConfigSchema.prefault({}),
  download: z
    .strictObject({
      /** Failed download attempts (not counting 429 waits) before the update fails. */
      attempts: z.number().int().min(1).max(100).default(10),
      /** Longest `Retry-After` honoured. */
      maxRetryAfter: positiveDuration.default(600_000),
      /** No byte for this long: the attempt is retried. */
      idleTimeout: positiveDuration.default(60_000),
      /** Least time between two `downloading` progress events. */
      progressEvery: positiveDuration.default(5000),
      backoff: z
        .strictObject({
          initial: positiveDuration.default(1000),
          max: positiveDuration.default(60_000),
        })
        .prefault({}),
    })
    .prefault({}),
});

/** The part a signed `config.desired` command may change (PROTOCOL.md §8). */
export const remoteConfigSchema = z.strictObject({
  pipeline: pipelineSchema.optional(),
  batch: batchConfigSchema.optional(),
  outbox: z
    .strictObject({
      maxBytes: sizeSchema.optional(),
      whenFull: z.enum(WHEN_FULL_POLICIES).optional(),
    })
    .optional(),
  state: z.strictObject({ every: positiveDuration.optional() }).optional(),
});
export type RemoteConfigInput = z.input<typeof remoteConfigSchema>;

export const agentConfigSchema = z.strictObject({
  /** The ingest's HTTP base URL; defaults to the one given at enrollment. */
  server: z.url({ protocol: /^https?$/ }).optional(),
  dataDir: z.string().min(1).default(DEFAULT_DATA_DIR),
  sources: sourcesConfigSchema,
  pipeline: pipelineSchema,
  batch: batchConfigSchema,
  outbox: outboxConfigSchema.prefault({}),
  uplink: uplinkConfigSchema.prefault({}),
  metrics: z
    .strictObject({
      /** Prometheus endpoint; keep it on localhost. `false` turns it off. */
      listen: z.union([listenSchema, z.literal(false)]).default('127.0.0.1:9464'),
    })
    .prefault({}),
  state: z
    .strictObject({
      /** PROTOCOL.md §6: reported state at least every 60 s. */
      every: positiveDuration.refine((ms) => ms <= 60_000, 'at most 60s').default(60_000),
    })
    .prefault({}),
  clock: clockConfigSchema.prefault({}),
  ota: otaConfigSchema.prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

/**
 * AGENT_* overrides for the same keys: the key path in SCREAMING_SNAKE_CASE. Values are read
 * as YAML scalars, so `AGENT_UPLINK_WINDOW=8` is a number and `...=false` a boolean.
 */
export const ENV_KEYS = [
  'server',
  'dataDir',
  'outbox.maxBytes',
  'outbox.whenFull',
  'outbox.sync',
  'outbox.quarantineMaxBytes',
  'batch.maxRecords',
  'batch.maxAge',
  'uplink.mqtt',
  'uplink.window',
  'uplink.backfillAfter',
  'uplink.tokenLifetime',
  'uplink.http.fallback',
  'uplink.insecureTls',
  'metrics.listen',
  'state.every',
  'clock.timesyncd',
  'clock.ingestDate',
  'ota.installRoot',
  'ota.hardware',
  'ota.trialWindow',
  'log.level',
] as const;

type Env = Readonly<Record<string, string | undefined>>;

/** `--config`, else AGENT_CONFIG, else the packaged default. */
export function configPathOf(flag: string | undefined, env: Env): string {
  return optionalConfigPathOf(flag, env) ?? DEFAULT_CONFIG_PATH;
}

/** `--config`, else AGENT_CONFIG, else none (`ports` works without a config). */
export function optionalConfigPathOf(flag: string | undefined, env: Env): string | undefined {
  return flag ?? nonEmpty(env[envName('config')]);
}

/** `--data-dir` of `enroll`, else AGENT_DATA_DIR, else the packaged default. */
export function dataDirOf(flag: string | undefined, env: Env): string {
  return flag ?? nonEmpty(env[envName('dataDir')]) ?? DEFAULT_DATA_DIR;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

export function envName(path: string): string {
  return `AGENT_${path
    .split('.')
    .map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
    .join('_')}`;
}

/** Where each problem is: `file:line:col`, or the variable it came from. */
export interface ConfigProblem {
  where: string;
  path: string;
  message: string;
}

export class ConfigInvalid extends AgentError {
  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(
      'invalid',
      'config_invalid',
      `${source}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems
        .map((p) => `  ${p.where} ${p.path ? `${p.path}: ` : ''}${p.message}`)
        .join('\n')}`,
      { details: { problems } },
    );
  }
}

export interface LoadConfigOptions {
  /** AGENT_* variables; `process.env` in main.ts. */
  env?: Readonly<Record<string, string | undefined>>;
}

export async function loadConfigFile(
  path: string,
  options: LoadConfigOptions = {},
): Promise<AgentConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new AgentError('invalid', 'config_missing', `cannot read ${path}`, {
      cause,
      hint: 'pass --config with the path of agent.yaml',
    });
  }
  return parseConfig(text, path, options);
}

/** Parses agent.yaml text plus AGENT_* overrides; throws ConfigInvalid listing every problem. */
export function parseConfig(
  text: string,
  source = 'agent.yaml',
  options: LoadConfigOptions = {},
): AgentConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): string => {
    if (offset === undefined) return source;
    const pos = lines.linePos(offset);
    return `${source}:${pos.line}:${pos.col}`;
  };
  const problems: ConfigProblem[] = doc.errors.map((e) => ({
    where: at(e.pos[0]),
    path: '',
    message: e.message.split('\n')[0]!,
  }));
  if (problems.length > 0) throw new ConfigInvalid(source, problems);

  const raw = (doc.toJS() ?? {}) as unknown;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigInvalid(source, [
      { where: at(0), path: '', message: 'expected a mapping of keys' },
    ]);
  }
  const fromEnv = new Map<string, string>();
  const value = raw as Record<string, unknown>;
  for (const key of ENV_KEYS) {
    const name = envName(key);
    const text = options.env?.[name];
    if (text === undefined || text === '') continue;
    setPath(value, key.split('.'), parseScalar(text));
    fromEnv.set(key, name);
  }

  const result = agentConfigSchema.safeParse(value);
  if (result.success) return deepFreeze(result.data);
  const located: (ConfigProblem & { offset: number })[] = [];
  for (const issue of result.error.issues) {
    const path = issue.path.map(String);
    const dotted = formatPath(issue.path);
    const env = [...fromEnv].find(([key]) => dotted === key || dotted.startsWith(`${key}.`));
    let offset = Number.MAX_SAFE_INTEGER;
    if (env === undefined) {
      // The deepest node of the path that exists in the file (a missing key: its parent);
      // for an unknown key, the key itself.
      let node: unknown;
      for (let n = path.length; n >= 0 && node === undefined; n--) {
        node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n).map(keyOf), true);
      }
      if (issue.code === 'unrecognized_keys' && isMap(node)) {
        const pair = node.items.find(
          (item) => isScalar(item.key) && item.key.value === issue.keys[0],
        );
        if (pair !== undefined) node = pair.key;
      }
      offset = (node as { range?: [number, number, number] } | undefined)?.range?.[0] ?? 0;
    }
    const missing = issue.code === 'invalid_type' && issue.message.endsWith('received undefined');
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`
        : missing
          ? 'required'
          : issue.message;
    located.push({ where: env === undefined ? at(offset) : env[1], path: dotted, message, offset });
  }
  located.sort((a, b) => a.offset - b.offset);
  for (const { offset: _, ...problem } of located) problems.push(problem);
  throw new ConfigInvalid(source, problems);
}

/** The JSON Schema of agent.yaml (input side: sizes and durations as people write them). */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(agentConfigSchema, { io: 'input', unrepresentable: 'any' }),
    title: 'outpost-agent configuration (agent.yaml)',
  };
}

/** Applies a remote configuration (already validated) over the file's. */
export function applyRemoteConfig(
  base: AgentConfig,
  remote: z.output<typeof remoteConfigSchema>,
): AgentConfig {
  return deepFreeze({
    ...base,
    ...(remote.pipeline === undefined ? {} : { pipeline: remote.pipeline }),
    ...(remote.batch === undefined ? {} : { batch: remote.batch }),
    outbox: { ...base.outbox, ...definedOnly(remote.outbox ?? {}) },
    state: { ...base.state, ...definedOnly(remote.state ?? {}) },
  } as AgentConfig);
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function keyOf(part: string): string | number {
  return /^\d+$/.test(part) ? Number(part) : part;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function parseScalar(text: string): unknown {
  const doc = parseDocument(text);
  return doc.errors.length > 0 ? text : doc.toJS();
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** Freezes plain objects and arrays only: a RegExp in a parser config must keep `lastIndex`. */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === Array.prototype || proto === null) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
