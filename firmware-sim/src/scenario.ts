import { durationSchema, parseDuration } from '@outpost/protocol/duration';
import { deviceIdSchema, metricNameSchema } from '@outpost/protocol/ids';
import {
  MAX_DEVICE_JWT_LIFETIME_S,
  MAX_RECORDS_PER_BATCH,
  MAX_TOKEN_BYTES,
  MAX_TOPIC_LENGTH,
} from '@outpost/protocol/limits';
import { SERIAL_DEFAULT_BAUD } from '@outpost/protocol/serial-line';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import type { BootloaderOptions, FlashFailure, FlashSettings } from './bootloader.js';
import type { DeviceFault, DeviceFaultKind, MetricSpec } from './device.js';
import {
  DEFAULT_LOCAL_TOPICS,
  LOCAL_PAYLOADS,
  type LocalFormat,
  topicTemplateProblem,
} from './local-messages.js';
import type { SignalSpec } from './signals.js';

/**
 * Scenario files (YAML): which devices to simulate, how their metrics behave, and which
 * faults to inject when. Validated once here; every problem is reported with its path
 * (`devices[0].metrics.t.amplitude: ...`). See scenarios/*.yaml for examples.
 */

const positiveDurationSchema = durationSchema.refine((ms) => ms > 0, 'must be longer than 0');

const TOKEN = /^[A-Za-z0-9._+-]{1,64}$/;
const tokenSchema = z.string().regex(TOKEN, 'must be 1-64 of A-Z a-z 0-9 . _ + -');

// ---------------------------------------------------------------------------------------
// Signals, in the long form or the one-line form of the command line.

const effectFields = {
  noise: z.number().nonnegative().optional(),
  drift: z.number().optional(),
  spikes: z
    .strictObject({ probability: z.number().min(0).max(1), magnitude: z.number() })
    .optional(),
  stuck: z
    .strictObject({ from: durationSchema, for: positiveDurationSchema.optional() })
    .optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  decimals: z.int().min(0).max(10).optional(),
};

const signalObjectSchema = z.discriminatedUnion(
  'signal',
  [
    z.strictObject({
      signal: z.literal('sine'),
      base: z.number(),
      amplitude: z.number(),
      period: positiveDurationSchema.default(60_000),
      phase: z.number().optional(),
      ...effectFields,
    }),
    z.strictObject({ signal: z.literal('constant'), value: z.number(), ...effectFields }),
    z.strictObject({
      signal: z.literal('steps'),
      levels: z.array(z.number()).min(1),
      every: positiveDurationSchema,
      ...effectFields,
    }),
  ],
  { error: 'signal must be one of sine, constant, steps' },
);

type SignalObject = z.output<typeof signalObjectSchema>;

function toSignalSpec(o: SignalObject): SignalSpec {
  const shape: SignalSpec['shape'] =
    o.signal === 'sine'
      ? {
          kind: 'sine',
          base: o.base,
          amplitude: o.amplitude,
          periodS: o.period / 1000,
          ...(o.phase === undefined ? {} : { phase: o.phase }),
        }
      : o.signal === 'constant'
        ? { kind: 'constant', value: o.value }
        : { kind: 'steps', levels: o.levels, everyS: o.every / 1000 };
  const spec: SignalSpec = { shape };
  if (o.noise !== undefined) spec.noise = o.noise;
  if (o.drift !== undefined) spec.drift = o.drift;
  if (o.spikes !== undefined) spec.spikes = o.spikes;
  if (o.stuck !== undefined) {
    spec.stuck = {
      fromS: o.stuck.from / 1000,
      ...(o.stuck.for === undefined ? {} : { forS: o.stuck.for / 1000 }),
    };
  }
  if (o.min !== undefined) spec.min = o.min;
  if (o.max !== undefined) spec.max = o.max;
  if (o.decimals !== undefined) spec.decimals = o.decimals;
  return spec;
}

const SHORTHAND_SHAPES: Record<string, { signal: string; args: string[] }> = {
  sine: { signal: 'sine', args: ['base', 'amplitude', 'period'] },
  const: { signal: 'constant', args: ['value'] },
  constant: { signal: 'constant', args: ['value'] },
  steps: { signal: 'steps', args: ['levels', 'every'] },
};

/**
 * The one-line form, `<shape>:<args>[,<effect>=<value>...]`, turned into the long form:
 * `sine:BASE:AMPLITUDE[:PERIOD]`, `const:VALUE`, `steps:L1/L2/...:EVERY`; effects
 * `noise=SD`, `drift=PER_S`, `spikes=PROBABILITY/MAGNITUDE`, `stuck=FROM[/FOR]`, `min=`,
 * `max=`, `decimals=`. Durations as in YAML (`60`, `60s`, `1m`). Returns a message for a
 * form it cannot split; the long-form schema checks the rest.
 * Example: `sine:20:5:10m,noise=0.1,spikes=0.01/8`.
 */
export function expandSignalShorthand(text: string): Record<string, unknown> | string {
  const [head = '', ...effects] = text.split(',');
  const [kind = '', ...args] = head.split(':');
  const shape = SHORTHAND_SHAPES[kind];
  if (shape === undefined) return `unknown signal "${kind}" (sine, const, steps)`;
  if (args.length > shape.args.length) {
    return `${kind} takes at most ${shape.args.length} arguments: ${kind}:${shape.args.join(':')}`;
  }
  const out: Record<string, unknown> = { signal: shape.signal };
  shape.args.forEach((name, i) => {
    const arg = args[i];
    if (arg === undefined) return;
    out[name] = name === 'levels' ? arg.split('/').map(numberOrText) : numberOrText(arg);
  });
  for (const effect of effects) {
    const eq = effect.indexOf('=');
    if (eq < 0) return `effect "${effect}" needs a value: name=value`;
    const name = effect.slice(0, eq);
    const value = effect.slice(eq + 1);
    const [a = '', b] = value.split('/');
    if (name === 'spikes') {
      out.spikes = { probability: numberOrText(a), magnitude: numberOrText(b) };
    } else if (name === 'stuck') {
      out.stuck =
        b === undefined
          ? { from: numberOrText(a) }
          : { from: numberOrText(a), for: numberOrText(b) };
    } else {
      out[name] = numberOrText(value);
    }
  }
  return out;
}

function numberOrText(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  const n = Number(text);
  return text.trim() !== '' && Number.isFinite(n) ? n : text;
}

/** A metric's signal: the long YAML form or the one-line form. */
export const signalSchema = z.preprocess((value, ctx) => {
  if (typeof value !== 'string') return value;
  const expanded = expandSignalShorthand(value);
  if (typeof expanded === 'string') {
    ctx.addIssue({ code: 'custom', message: expanded });
    return z.NEVER;
  }
  return expanded;
}, signalObjectSchema.transform(toSignalSpec));

// ---------------------------------------------------------------------------------------
// Devices.

const timesSchema = z.int().positive().optional();

const failFlashSchema = z
  .union(
    [
      z.literal('verify').transform((): FlashFailure => ({ kind: 'verify' })),
      z
        .strictObject({ verify: z.literal(true), times: timesSchema })
        .transform((o): FlashFailure => withTimes({ kind: 'verify' }, o.times)),
      z
        .strictObject({ atOffset: z.int().nonnegative(), times: timesSchema })
        .transform(
          (o): FlashFailure => withTimes({ kind: 'write', atOffset: o.atOffset }, o.times),
        ),
    ],
    { error: 'expected "verify", {verify: true, times?} or {atOffset: N, times?}' },
  )
  .nullable();

const failHealthSchema = z
  .strictObject({ after: durationSchema, times: timesSchema })
  .transform((o) => withTimes({ afterMs: o.after }, o.times))
  .nullable();

function withTimes<T extends object>(value: T, times: number | undefined): T & { times?: number } {
  return times === undefined ? value : { ...value, times };
}

const flashFields = {
  slowMs: z.number().nonnegative().optional(),
  failFlash: failFlashSchema.optional(),
  failHealth: failHealthSchema.optional(),
};

const bootloaderSchema = z.strictObject({
  maxImageBytes: z.int().positive().optional(),
  rebootMs: z.number().nonnegative().optional(),
  ...flashFields,
});

const metricsSchema = z
  .record(metricNameSchema, signalSchema)
  .refine((m) => Object.keys(m).length > 0, 'needs at least one metric');

/** Readings per second. */
const rateSchema = z.number().positive().max(1000).default(1);

const serialDeviceSchema = z.strictObject({
  id: deviceIdSchema,
  serial: tokenSchema,
  hardware: tokenSchema,
  firmware: tokenSchema,
  transport: z.literal('serial').default('serial'),
  /** Create a pty pair with socat and print the application's end. */
  pty: z.boolean().optional(),
  /** Or open this existing path (the device's end). */
  port: z.string().min(1).optional(),
  baud: z.int().positive().default(SERIAL_DEFAULT_BAUD),
  rate: rateSchema,
  /**
   * After each (re)open, stay quiet until the application sends `ID?`. Opening a serial
   * port discards what is buffered, so only then can "sent" and "received" match exactly.
   */
  waitForId: z.boolean().default(false),
  seed: z.int().optional(),
  metrics: metricsSchema,
  bootloader: bootloaderSchema.default({}),
});

const signedDurationSchema = z.union(
  [
    z
      .number()
      .finite()
      .transform((s) => s * 1000),
    z
      .string()
      .regex(/^-?\d+(?:\.\d+)?(ms|s|m|h)$/)
      .transform((t) => (t.startsWith('-') ? -parseDuration(t.slice(1))! : parseDuration(t)!)),
  ],
  { error: 'expected a duration such as -90s or 2m' },
);

const brokerUrlSchema = z
  .url({
    protocol: /^(mqtt|mqtts|ws|wss)$/,
    error: 'expected mqtt://, mqtts://, ws:// or wss:// URL',
  })
  .max(2048);
const serverUrlSchema = z
  .url({ protocol: /^https?$/, error: 'expected the http:// or https:// URL of the service' })
  .max(2048);
const pathSchema = z.string().min(1).max(4096);

const mqttFields = {
  id: deviceIdSchema,
  transport: z.literal('mqtt'),
  /** Reported in the counters only. */
  serial: tokenSchema.optional(),
  hardware: tokenSchema.optional(),
  firmware: tokenSchema.optional(),
  rate: rateSchema,
  seed: z.int().optional(),
  metrics: metricsSchema,
  /** The device's clock runs this far off from the start. */
  clockSkew: signedDurationSchema.default(0),
  /** Batches (local: readings) in flight at most. */
  window: z.int().min(1).max(1000).default(8),
  /** Readings kept in memory while unacknowledged; beyond, new readings are skipped. */
  maxPending: z.int().positive().max(10_000_000).default(10_000),
};

const mqttDirectSchema = z.strictObject({
  ...mqttFields,
  mode: z.literal('direct').default('direct'),
  // How the device gets its identity (PROTOCOL.md §2): exactly one of the next four.
  /** The simulator makes an enrollment with the admin token (`--admin-token`), then enrolls. */
  enroll: z.literal(true).optional(),
  /** A single-use enrollment token. */
  enrollmentToken: z.string().min(1).max(MAX_TOKEN_BYTES).optional(),
  /** A directory written by `outpost device credentials`. */
  credentials: pathSchema.optional(),
  /** A private JWK file of an enrolled device; needs `broker`. */
  privateKey: pathSchema.optional(),
  /** With `privateKey`: the service JWKS (to verify commands) and the JWT audience. */
  jwks: pathSchema.optional(),
  audience: z.string().min(1).max(256).optional(),
  /** The service's HTTP URL, to enroll; defaults to the scenario's `server`. */
  server: serverUrlSchema.optional(),
  /** The ingest's MQTT URL; defaults to the one enrollment or credentials name. */
  broker: brokerUrlSchema.optional(),
  /** false: bare SenML packs, for a device whose policy is `payloadSigning: optional`. */
  signing: z.boolean().default(true),
  batch: z
    .strictObject({
      /** Readings per batch at most. */
      size: z.int().min(1).max(MAX_RECORDS_PER_BATCH).default(100),
      /** A batch closes this long after its first reading at the latest. */
      interval: positiveDurationSchema.default(1000),
    })
    .prefault({}),
  /** Lifetime of each device JWT; the device reconnects with a fresh one before it ends. */
  jwtLifetime: positiveDurationSchema
    .default(3_600_000)
    .refine((ms) => ms <= MAX_DEVICE_JWT_LIFETIME_S * 1000, 'at most 24h (PROTOCOL.md §3)'),
});

const mqttLocalSchema = z.strictObject({
  ...mqttFields,
  mode: z.literal('local'),
  broker: brokerUrlSchema,
  /** Defaults to the device id. */
  clientId: z.string().min(1).max(128).optional(),
  username: z.string().min(1).max(256).optional(),
  password: z.string().max(256).optional(),
  /** `{device}` and (for number payloads) `{metric}`; defaults per payload. */
  topic: z.string().min(1).max(MAX_TOPIC_LENGTH).optional(),
  payload: z.enum(LOCAL_PAYLOADS).default('number'),
  /** JSON payloads: the field with the time in epoch seconds, or null for none. */
  timeField: z.string().min(1).max(64).nullable().default('time'),
  qos: z.union([z.literal(0), z.literal(1)]).default(1),
});

const deviceSchema = z.discriminatedUnion(
  'transport',
  [
    serialDeviceSchema,
    z.discriminatedUnion('mode', [mqttDirectSchema, mqttLocalSchema], {
      error: 'mode must be direct or local',
    }),
  ],
  { error: 'transport must be serial or mqtt' },
);

type DeviceEntry = z.output<typeof deviceSchema>;
type SerialEntry = z.output<typeof serialDeviceSchema>;
type MqttDirectEntry = z.output<typeof mqttDirectSchema>;

// ---------------------------------------------------------------------------------------
// Faults: `at`, optionally `device`, and exactly one fault.

const FAULT_KEYS = [
  'garbage',
  'badCrc',
  'partialLine',
  'silence',
  'unplug',
  'clockSkew',
  'stuck',
  'flash',
  'badBatch',
] as const satisfies readonly DeviceFaultKind[];

/** The faults each kind of device takes. */
const SERIAL_FAULTS: ReadonlySet<DeviceFaultKind> = new Set([
  'garbage',
  'badCrc',
  'partialLine',
  'silence',
  'unplug',
  'clockSkew',
  'stuck',
  'flash',
]);
const MQTT_LOCAL_FAULTS: ReadonlySet<DeviceFaultKind> = new Set([
  'silence',
  'unplug',
  'clockSkew',
  'stuck',
]);
const MQTT_DIRECT_FAULTS: ReadonlySet<DeviceFaultKind> = new Set([
  ...MQTT_LOCAL_FAULTS,
  'badBatch',
]);

function faultsOf(d: DeviceEntry): ReadonlySet<DeviceFaultKind> {
  if (d.transport === 'serial') return SERIAL_FAULTS;
  return d.mode === 'direct' ? MQTT_DIRECT_FAULTS : MQTT_LOCAL_FAULTS;
}

function faultKindOf(f: FaultEntry): DeviceFaultKind | undefined {
  return FAULT_KEYS.find((key) => f[key] !== undefined);
}

const lineCountSchema = z.int().positive().max(10_000);

const faultSchema = z
  .strictObject({
    at: durationSchema,
    /** Default: every device. */
    device: deviceIdSchema.optional(),
    garbage: lineCountSchema.optional(),
    badCrc: lineCountSchema.optional(),
    partialLine: lineCountSchema.optional(),
    silence: z.strictObject({ for: positiveDurationSchema }).optional(),
    unplug: z.strictObject({ for: positiveDurationSchema }).optional(),
    clockSkew: z.strictObject({ by: signedDurationSchema }).optional(),
    stuck: z.strictObject({ metric: metricNameSchema, for: positiveDurationSchema }).optional(),
    flash: z.strictObject(flashFields).optional(),
    /** MQTT direct devices: this many batches the service must refuse. */
    badBatch: z.int().positive().max(1000).optional(),
  })
  .superRefine((f, ctx) => {
    const given = FAULT_KEYS.filter((key) => f[key] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `needs exactly one of ${FAULT_KEYS.join(', ')} (got ${given.length === 0 ? 'none' : given.join(', ')})`,
      });
    }
  });

type FaultEntry = z.output<typeof faultSchema>;

function toFault(f: FaultEntry): DeviceFault {
  if (f.garbage !== undefined) return { kind: 'garbage', lines: f.garbage };
  if (f.badCrc !== undefined) return { kind: 'badCrc', lines: f.badCrc };
  if (f.partialLine !== undefined) return { kind: 'partialLine', lines: f.partialLine };
  if (f.silence !== undefined) return { kind: 'silence', forMs: f.silence.for };
  if (f.unplug !== undefined) return { kind: 'unplug', forMs: f.unplug.for };
  if (f.clockSkew !== undefined) return { kind: 'clockSkew', byMs: f.clockSkew.by };
  if (f.stuck !== undefined) {
    return { kind: 'stuck', metric: f.stuck.metric, forMs: f.stuck.for };
  }
  if (f.badBatch !== undefined) return { kind: 'badBatch', batches: f.badBatch };
  const flash: FlashSettings = {};
  if (f.flash?.slowMs !== undefined) flash.slowMs = f.flash.slowMs;
  if (f.flash?.failFlash !== undefined) flash.failFlash = f.flash.failFlash;
  if (f.flash?.failHealth !== undefined) flash.failHealth = f.flash.failHealth;
  return { kind: 'flash', flash };
}

const scenarioSchema = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  /** Seeds every device's signals (each device mixes in its id, or uses its own `seed`). */
  seed: z.int().default(1),
  /** Stop after this long; default: run until interrupted. */
  duration: positiveDurationSchema.optional(),
  /** The service's HTTP URL, for MQTT devices that enroll. */
  server: serverUrlSchema.optional(),
  devices: z.array(deviceSchema).min(1),
  faults: z.array(faultSchema).default([]),
});

// ---------------------------------------------------------------------------------------
// The validated form.

export interface SerialDeviceConfig {
  id: string;
  identity: { hardware: string; serial: string; version: string };
  transport: 'serial';
  /** `pty`: the simulator makes the pair; `port`: it opens the path given. */
  link: { kind: 'pty' } | { kind: 'port'; path: string };
  baud: number;
  ratePerS: number;
  waitForId: boolean;
  seed: number;
  metrics: MetricSpec[];
  bootloader: Omit<BootloaderOptions, 'sha256'>;
}

/** How a direct MQTT device gets its identity (PROTOCOL.md §2). */
export type CredentialSource =
  /** The simulator makes an enrollment with the admin token, then the device enrolls. */
  | { kind: 'enroll' }
  /** The device enrolls with this single-use enrollment token. */
  | { kind: 'token'; token: string }
  /** `credentials.json` and the key file `outpost device credentials` wrote to `dir`. */
  | { kind: 'credentials'; dir: string }
  /** A private JWK file of an enrolled device, and optionally the service JWKS file. */
  | { kind: 'key'; file: string; jwksFile: string | undefined; audience: string | undefined };

/** Straight to the ingest: enrolled, device JWT, signed batches or bare SenML. */
export interface MqttDirectLink {
  mode: 'direct';
  credentials: CredentialSource;
  /** The service's HTTP URL (device's, else the scenario's), to enroll. */
  server: string | undefined;
  /** Overrides the MQTT endpoint of the enrollment or credentials. */
  broker: string | undefined;
  signed: boolean;
  /** Readings per batch at most. */
  batchSize: number;
  batchIntervalMs: number;
  jwtLifetimeS: number;
}

/** To a site's local broker, the way sensors feed the edge agent. */
export interface MqttLocalLink {
  mode: 'local';
  broker: string;
  clientId: string;
  username: string | undefined;
  password: string | undefined;
  format: LocalFormat;
  qos: 0 | 1;
}

export interface MqttDeviceConfig {
  id: string;
  identity: { hardware: string; serial: string; version: string };
  transport: 'mqtt';
  link: MqttDirectLink | MqttLocalLink;
  ratePerS: number;
  seed: number;
  metrics: MetricSpec[];
  clockSkewMs: number;
  /** Batches (local: readings) in flight at most. */
  window: number;
  /** Readings kept while unacknowledged; beyond, new readings are skipped. */
  maxPendingReadings: number;
}

export type DeviceConfig = SerialDeviceConfig | MqttDeviceConfig;

export interface ScheduledFault {
  atMs: number;
  /** Devices it applies to. */
  devices: string[];
  fault: DeviceFault;
}

export interface Scenario {
  name: string | undefined;
  seed: number;
  durationMs: number | undefined;
  devices: DeviceConfig[];
  /** In time order. */
  faults: ScheduledFault[];
}

export interface ScenarioIssue {
  /** `devices[0].metrics.t.amplitude`, or `(yaml)` for a syntax error. */
  path: string;
  message: string;
}

export class ScenarioError extends Error {
  readonly issues: ScenarioIssue[];

  constructor(source: string, issues: ScenarioIssue[]) {
    super(
      `invalid scenario ${source}:\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
    );
    this.name = 'ScenarioError';
    this.issues = issues;
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

/** Parses and validates a scenario; throws {@link ScenarioError} listing every problem. */
export function parseScenario(text: string, source = 'scenario'): Scenario {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    throw new ScenarioError(
      source,
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { path: '(yaml)', message: `${e.message} (line ${line}, column ${col})` };
      }),
    );
  }
  return scenarioFromObject(doc.toJS(), source);
}

/** Validates a scenario already read into plain values (e.g. built from CLI flags). */
export function scenarioFromObject(value: unknown, source = 'scenario'): Scenario {
  const result = scenarioSchema.safeParse(value);
  if (!result.success) {
    throw new ScenarioError(
      source,
      result.error.issues.map((issue) => ({
        path: formatPath(issue.path),
        message:
          issue.code === 'unrecognized_keys'
            ? `unknown key ${issue.keys.join(', ')}`
            : issue.message,
      })),
    );
  }
  const raw = result.data;
  const issues = crossCheck(raw);
  if (issues.length > 0) throw new ScenarioError(source, issues);

  const devices = raw.devices.map((d) => deviceConfig(d, raw.seed, raw.server));
  const faults = raw.faults
    .map((f) => {
      const kind = faultKindOf(f)!;
      const targets =
        f.device === undefined
          ? raw.devices.filter((d) => faultsOf(d).has(kind)).map((d) => d.id)
          : [f.device];
      return { atMs: f.at, devices: targets, fault: toFault(f) };
    })
    .sort((a, b) => a.atMs - b.atMs);
  return { name: raw.name, seed: raw.seed, durationMs: raw.duration, devices, faults };
}

function deviceConfig(d: DeviceEntry, seed: number, server: string | undefined): DeviceConfig {
  const metrics = Object.entries(d.metrics).map(([name, signal]) => ({ name, signal }));
  if (d.transport === 'serial') {
    return {
      id: d.id,
      identity: { hardware: d.hardware, serial: d.serial, version: d.firmware },
      transport: d.transport,
      link: d.port !== undefined ? { kind: 'port', path: d.port } : { kind: 'pty' },
      baud: d.baud,
      ratePerS: d.rate,
      waitForId: d.waitForId,
      seed: d.seed ?? seed,
      metrics,
      bootloader: bootloaderOptions(d.bootloader),
    };
  }
  const link: MqttDirectLink | MqttLocalLink =
    d.mode === 'direct'
      ? {
          mode: 'direct',
          credentials: credentialSource(d),
          server: d.server ?? server,
          broker: d.broker,
          signed: d.signing,
          batchSize: d.batch.size,
          batchIntervalMs: d.batch.interval,
          jwtLifetimeS: Math.max(1, Math.round(d.jwtLifetime / 1000)),
        }
      : {
          mode: 'local',
          broker: d.broker,
          clientId: d.clientId ?? d.id,
          username: d.username,
          password: d.password,
          format: {
            topic: d.topic ?? DEFAULT_LOCAL_TOPICS[d.payload],
            payload: d.payload,
            timeField: d.timeField ?? undefined,
          },
          qos: d.qos,
        };
  return {
    id: d.id,
    identity: {
      hardware: d.hardware ?? 'sim-mqtt',
      serial: d.serial ?? d.id,
      version: d.firmware ?? '1.0.0',
    },
    transport: 'mqtt',
    link,
    ratePerS: d.rate,
    seed: d.seed ?? seed,
    metrics,
    clockSkewMs: d.clockSkew,
    window: d.window,
    maxPendingReadings: d.maxPending,
  };
}

/** Exactly one source is given: {@link crossCheck} made sure. */
function credentialSource(d: MqttDirectEntry): CredentialSource {
  if (d.enrollmentToken !== undefined) return { kind: 'token', token: d.enrollmentToken };
  if (d.credentials !== undefined) return { kind: 'credentials', dir: d.credentials };
  if (d.privateKey !== undefined) {
    return { kind: 'key', file: d.privateKey, jwksFile: d.jwks, audience: d.audience };
  }
  return { kind: 'enroll' };
}

const CREDENTIAL_KEYS = ['enroll', 'enrollmentToken', 'credentials', 'privateKey'] as const;

/** Checks within one MQTT device that the schema cannot express. */
function checkMqttDevice(d: Exclude<DeviceEntry, SerialEntry>, path: string): ScenarioIssue[] {
  const issues: ScenarioIssue[] = [];
  const metrics = Object.keys(d.metrics);
  if (d.mode === 'direct') {
    const given = CREDENTIAL_KEYS.filter((key) => d[key] !== undefined);
    if (given.length !== 1) {
      issues.push({
        path,
        message: `needs exactly one of enroll: true, enrollmentToken, credentials, privateKey (got ${given.length === 0 ? 'none' : given.join(', ')})`,
      });
    }
    for (const key of ['jwks', 'audience'] as const) {
      if (d[key] !== undefined && d.privateKey === undefined) {
        issues.push({ path: `${path}.${key}`, message: 'goes with privateKey' });
      }
    }
    if (d.privateKey !== undefined && d.broker === undefined) {
      issues.push({ path: `${path}.broker`, message: 'a device given privateKey needs broker' });
    }
    if (d.batch.size * metrics.length > MAX_RECORDS_PER_BATCH) {
      issues.push({
        path: `${path}.batch.size`,
        message: `${d.batch.size} readings of ${metrics.length} metrics are over ${MAX_RECORDS_PER_BATCH} records`,
      });
    }
    return issues;
  }
  const topic = d.topic ?? DEFAULT_LOCAL_TOPICS[d.payload];
  const problem = topicTemplateProblem(topic, d.payload);
  if (problem !== undefined) issues.push({ path: `${path}.topic`, message: problem });
  if (d.password !== undefined && d.username === undefined) {
    issues.push({ path: `${path}.password`, message: 'goes with username' });
  }
  if (d.payload === 'json' && d.timeField !== null && metrics.includes(d.timeField)) {
    issues.push({ path: `${path}.timeField`, message: `"${d.timeField}" is also a metric` });
  }
  return issues;
}

function bootloaderOptions(
  b: z.output<typeof bootloaderSchema>,
): Omit<BootloaderOptions, 'sha256'> {
  const options: Omit<BootloaderOptions, 'sha256'> = {};
  if (b.maxImageBytes !== undefined) options.maxImageBytes = b.maxImageBytes;
  if (b.rebootMs !== undefined) options.rebootMs = b.rebootMs;
  if (b.slowMs !== undefined) options.slowMs = b.slowMs;
  if (b.failFlash != null) options.failFlash = b.failFlash;
  if (b.failHealth != null) options.failHealth = b.failHealth;
  return options;
}

function kindOfDevice(d: DeviceEntry): string {
  return d.transport === 'serial' ? 'serial' : `mqtt ${d.mode}`;
}

/** Checks across entries, once each entry is well-formed. */
function crossCheck(raw: z.output<typeof scenarioSchema>): ScenarioIssue[] {
  const issues: ScenarioIssue[] = [];
  const firstIndex = new Map<string, number>();
  const seen = (kind: string, value: string, path: string, i: number) => {
    const key = `${kind}:${value}`;
    const first = firstIndex.get(key);
    if (first === undefined) firstIndex.set(key, i);
    else issues.push({ path, message: `${kind} "${value}" is also used by devices[${first}]` });
  };
  raw.devices.forEach((d, i) => {
    seen('id', d.id, `devices[${i}].id`, i);
    if (d.serial !== undefined) seen('serial', d.serial, `devices[${i}].serial`, i);
    if (d.transport === 'mqtt') {
      issues.push(...checkMqttDevice(d, `devices[${i}]`));
      return;
    }
    if (d.port !== undefined) seen('port', d.port, `devices[${i}].port`, i);
    if ((d.pty === true) === (d.port !== undefined)) {
      issues.push({ path: `devices[${i}]`, message: 'needs either pty: true or port: PATH' });
    }
  });
  const byId = new Map(raw.devices.map((d) => [d.id, d]));
  raw.faults.forEach((f, i) => {
    const kind = faultKindOf(f)!;
    const target = f.device === undefined ? undefined : byId.get(f.device);
    if (f.device !== undefined && target === undefined) {
      issues.push({ path: `faults[${i}].device`, message: `no device "${f.device}"` });
    } else if (target !== undefined && !faultsOf(target).has(kind)) {
      issues.push({
        path: `faults[${i}].${kind}`,
        message: `device "${target.id}" (${kindOfDevice(target)}) takes no ${kind} fault`,
      });
    } else if (target === undefined && !raw.devices.some((d) => faultsOf(d).has(kind))) {
      issues.push({ path: `faults[${i}].${kind}`, message: `no device of the scenario takes it` });
    }
    if (f.stuck !== undefined) {
      const targets =
        f.device === undefined ? raw.devices : [target].filter((d) => d !== undefined);
      for (const d of targets) {
        if (!(f.stuck.metric in d.metrics)) {
          issues.push({
            path: `faults[${i}].stuck.metric`,
            message: `device "${d.id}" has no metric "${f.stuck.metric}"`,
          });
        }
      }
    }
    if (raw.duration !== undefined && f.at > raw.duration) {
      issues.push({ path: `faults[${i}].at`, message: 'comes after the scenario ends' });
    }
  });
  return issues;
}
