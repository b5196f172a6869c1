import { durationSchema, parseDuration } from '@outpost/protocol/duration';
import { deviceIdSchema, metricNameSchema } from '@outpost/protocol/ids';
import { SERIAL_DEFAULT_BAUD } from '@outpost/protocol/serial-line';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import type { BootloaderOptions, FlashFailure, FlashSettings } from './bootloader.js';
import type { DeviceFault, MetricSpec } from './device.js';
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

const deviceSchema = z.strictObject({
  id: deviceIdSchema,
  serial: tokenSchema,
  hardware: tokenSchema,
  firmware: tokenSchema,
  /** Serial devices only, for now; MQTT devices join with `transport: mqtt`. */
  transport: z.literal('serial').default('serial'),
  /** Create a pty pair with socat and print the application's end. */
  pty: z.boolean().optional(),
  /** Or open this existing path (the device's end). */
  port: z.string().min(1).optional(),
  baud: z.int().positive().default(SERIAL_DEFAULT_BAUD),
  /** Readings per second. */
  rate: z.number().positive().max(1000).default(1),
  /**
   * After each (re)open, stay quiet until the application sends `ID?`. Opening a serial
   * port discards what is buffered, so only then can "sent" and "received" match exactly.
   */
  waitForId: z.boolean().default(false),
  seed: z.int().optional(),
  metrics: z
    .record(metricNameSchema, signalSchema)
    .refine((m) => Object.keys(m).length > 0, 'needs at least one metric'),
  bootloader: bootloaderSchema.default({}),
});

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
] as const;

const lineCountSchema = z.int().positive().max(10_000);
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
  devices: SerialDeviceConfig[];
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

  const devices = raw.devices.map(
    (d): SerialDeviceConfig => ({
      id: d.id,
      identity: { hardware: d.hardware, serial: d.serial, version: d.firmware },
      transport: d.transport,
      link: d.port !== undefined ? { kind: 'port', path: d.port } : { kind: 'pty' },
      baud: d.baud,
      ratePerS: d.rate,
      waitForId: d.waitForId,
      seed: d.seed ?? raw.seed,
      metrics: Object.entries(d.metrics).map(([name, signal]) => ({ name, signal })),
      bootloader: bootloaderOptions(d.bootloader),
    }),
  );
  const allIds = devices.map((d) => d.id);
  const faults = raw.faults
    .map((f) => ({
      atMs: f.at,
      devices: f.device === undefined ? allIds : [f.device],
      fault: toFault(f),
    }))
    .sort((a, b) => a.atMs - b.atMs);
  return { name: raw.name, seed: raw.seed, durationMs: raw.duration, devices, faults };
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
    seen('serial', d.serial, `devices[${i}].serial`, i);
    if (d.port !== undefined) seen('port', d.port, `devices[${i}].port`, i);
    if ((d.pty === true) === (d.port !== undefined)) {
      issues.push({ path: `devices[${i}]`, message: 'needs either pty: true or port: PATH' });
    }
  });
  const byId = new Map(raw.devices.map((d) => [d.id, d]));
  raw.faults.forEach((f, i) => {
    if (f.device !== undefined && !byId.has(f.device)) {
      issues.push({ path: `faults[${i}].device`, message: `no device "${f.device}"` });
    }
    if (f.stuck !== undefined) {
      const targets =
        f.device === undefined ? raw.devices : [byId.get(f.device)].filter((d) => d !== undefined);
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
