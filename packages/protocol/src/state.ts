import { z } from 'zod';
import { MAX_STATE_COMPONENTS, MAX_STATE_PORTS, MAX_VERSION_LENGTH } from './limits.js';
import { componentNameSchema } from './ota.js';
import { textSchema } from './text.js';

/**
 * A version as a device reports it. Not required to be semver: a device reports what it
 * runs, and refusing the whole report for an odd version string would hide its outbox.
 */
const reportedVersion = textSchema(MAX_VERSION_LENGTH, 1);
const count = z.number().int().nonnegative();
const seconds = z.number().nonnegative();

/** PROTOCOL.md §6: state of a serial port the agent reads. */
export const PORT_STATES = ['open', 'missing', 'silent'] as const;
export type PortState = (typeof PORT_STATES)[number];

/**
 * PROTOCOL.md §6: reported state, published retained on `v1/devices/{id}/state`.
 * `agent`, `outbox`, `ports` and `config_version` come from an edge agent; a plain device
 * reports `firmware` and `uptime_s` only.
 */
export const reportedStateSchema = z.object({
  v: z.literal(1),
  firmware: z.object({
    version: reportedVersion,
    components: z
      .record(componentNameSchema, reportedVersion)
      .refine(
        (components) => Object.keys(components).length <= MAX_STATE_COMPONENTS,
        `at most ${MAX_STATE_COMPONENTS} components`,
      )
      .optional(),
  }),
  agent: z.object({ version: reportedVersion }).optional(),
  uptime_s: seconds,
  outbox: z
    .object({
      pending: count,
      bytes: count,
      oldest_s: seconds,
      dropped: count,
    })
    .optional(),
  ports: z
    .array(z.object({ path: textSchema(256, 1), state: z.enum(PORT_STATES) }))
    .max(MAX_STATE_PORTS)
    .optional(),
  config_version: count.optional(),
});
export type ReportedState = z.infer<typeof reportedStateSchema>;
