import { durationSchema } from '@outpost/protocol/duration';
import { deviceIdSchema } from '@outpost/protocol/ids';
import { MAX_MESSAGE_BYTES } from '@outpost/protocol/limits';
import { z } from 'zod';
import { parserConfigSchema } from './line-parsers.js';
import { DEFAULT_TOPIC_MAPPINGS, topicMappingSchema } from './topic-mapping.js';

/**
 * The `sources:` section of agent.yaml (SURFACES.md), for the core's config.ts to embed:
 *
 * ```yaml
 * sources:
 *   - serial: { port: /dev/serial/by-id/usb-FTDI_..., parser: outpost-line, device: boiler-7 }
 *   - mqtt: { listen: 0.0.0.0:1883, users: [{ username: sensors, password: ... }] }
 * ```
 */

const usbIdSchema = z
  .string()
  .regex(/^(?:0x)?[0-9A-Fa-f]{1,4}$/, 'a USB id is up to 4 hex digits, e.g. 0403');

export const backoffConfigSchema = z.strictObject({
  initial: durationSchema.default(250),
  max: durationSchema.default(30_000),
  factor: z.number().min(1).max(10).default(2),
  jitter: z.number().min(0).max(1).default(0.2),
});

export const serialSourceConfigSchema = z
  .strictObject({
    /** Usually `/dev/serial/by-id/...`; resolved again before every open. */
    port: z.string().min(1).max(1024).optional(),
    /** Or the USB device, found among the plugged-in ports before every open. */
    match: z
      .strictObject({
        vendorId: usbIdSchema,
        productId: usbIdSchema,
        serialNumber: z.string().min(1).max(128).optional(),
      })
      .optional(),
    baudRate: z.number().int().positive().max(4_000_000).default(115_200),
    dataBits: z.union([z.literal(5), z.literal(6), z.literal(7), z.literal(8)]).default(8),
    stopBits: z.union([z.literal(1), z.literal(1.5), z.literal(2)]).default(1),
    parity: z.enum(['none', 'even', 'odd', 'mark', 'space']).default('none'),
    parser: parserConfigSchema.prefault('outpost-line'),
    /** The child device the readings belong to (PROTOCOL.md §1). */
    device: deviceIdSchema,
    /** No valid frame for this long → `silent`, reopen; `0` turns the watchdog off. */
    silentAfter: durationSchema.default(30_000),
    /** Send `ID?` after each open; defaults to true for `outpost-line`. */
    identify: z.boolean().optional(),
    identifyEvery: durationSchema.default(2_000),
    reconnect: backoffConfigSchema.prefault({}),
  })
  .superRefine((c, ctx) => {
    if ((c.port === undefined) === (c.match === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['port'],
        message: 'give exactly one of port or match',
      });
    }
    if (c.reconnect.max < c.reconnect.initial) {
      ctx.addIssue({ code: 'custom', path: ['reconnect', 'max'], message: 'max < initial' });
    }
  })
  .transform((c) => ({ ...c, identify: c.identify ?? c.parser.type === 'outpost-line' }));
export type SerialSourceConfig = z.output<typeof serialSourceConfigSchema>;

/** `host:port`, `[v6]:port`; port 0 picks a free one. */
export const listenAddressSchema = z
  .string()
  .max(300)
  .transform((text, ctx) => {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
    const port = m === null ? Number.NaN : Number(m[3]);
    if (m === null || port > 65_535) {
      ctx.addIssue({ code: 'custom', message: 'expected host:port, e.g. 127.0.0.1:1883' });
      return z.NEVER;
    }
    return { host: (m[1] ?? m[2])!, port };
  });

const credentialSchema = z.strictObject({
  username: z.string().min(1).max(128),
  password: z.string().min(1).max(256),
});

export const mqttSourceConfigSchema = z
  .strictObject({
    /** Run an embedded broker for local sensors on this address. */
    listen: listenAddressSchema.optional(),
    /** Or subscribe to an existing broker (`mqtt://`, `mqtts://`, `ws://`, `wss://`). */
    connect: z
      .string()
      .max(2048)
      .regex(/^(?:mqtts?|wss?):\/\/[^\s]+$/, 'expected mqtt://host:port (or mqtts, ws, wss)')
      .optional(),
    /** `listen`: accepted local credentials. */
    users: z.array(credentialSchema).min(1).max(256).optional(),
    /** `listen`: accept clients without credentials. Off unless set. */
    allowAnonymous: z.boolean().default(false),
    /** `connect`: credentials and client id for the existing broker. */
    username: z.string().min(1).max(128).optional(),
    password: z.string().min(1).max(256).optional(),
    clientId: z.string().min(1).max(128).optional(),
    /** Larger payloads are refused and counted; the listener drops the connection. */
    maxPayloadBytes: z
      .number()
      .int()
      .min(64)
      .max(MAX_MESSAGE_BYTES)
      .default(64 * 1024),
    topics: z.array(topicMappingSchema).min(1).max(256).prefault(DEFAULT_TOPIC_MAPPINGS),
  })
  .superRefine((c, ctx) => {
    if ((c.listen === undefined) === (c.connect === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['listen'],
        message: 'give exactly one of listen or connect',
      });
    }
    if (c.listen !== undefined && c.users === undefined && !c.allowAnonymous) {
      ctx.addIssue({
        code: 'custom',
        path: ['users'],
        message: 'a listener needs users, or allowAnonymous: true',
      });
    }
    if (c.connect !== undefined && (c.users !== undefined || c.allowAnonymous)) {
      ctx.addIssue({ code: 'custom', path: ['users'], message: 'users are for listen' });
    }
    if (c.listen !== undefined && (c.username !== undefined || c.password !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['username'], message: 'username is for connect' });
    }
  });
export type MqttSourceConfig = z.output<typeof mqttSourceConfigSchema>;

export type SourceConfig =
  | { kind: 'serial'; serial: SerialSourceConfig }
  | { kind: 'mqtt'; mqtt: MqttSourceConfig };

/** One entry of `sources:`: `{ serial: {...} }` or `{ mqtt: {...} }`. */
export const sourceConfigSchema = z
  .strictObject({
    serial: serialSourceConfigSchema.optional(),
    mqtt: mqttSourceConfigSchema.optional(),
  })
  .superRefine((s, ctx) => {
    if ((s.serial === undefined) === (s.mqtt === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a source is exactly one of serial: or mqtt:' });
    }
  })
  .transform(
    (s): SourceConfig =>
      s.serial !== undefined
        ? { kind: 'serial', serial: s.serial }
        : { kind: 'mqtt', mqtt: s.mqtt! },
  );

export const sourcesConfigSchema = z.array(sourceConfigSchema).max(64).default([]);
