import { deviceIdSchema, metricNameSchema } from '@outpost/protocol/ids';
import { z } from 'zod';

/**
 * What replicas tell each other (pure: schemas, encoding and bounds; no Redis). Every message
 * read from the bus is size-checked before parsing and validated here, so a bad or hostile
 * message is dropped, never trusted.
 */

/** Largest encoded message; readings are sent in chunks that stay well below it. */
export const MAX_CLUSTER_MESSAGE_BYTES = 512 * 1024;
/** Readings per `readings` message; a larger accepted batch is split. */
export const MAX_POINTS_PER_MESSAGE = 1000;

export const replicaIdSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);

const epochMs = z.number().int().nonnegative();
const shortText = z.string().max(256);

const pointSchema = z.object({
  device: deviceIdSchema,
  metric: metricNameSchema,
  timeMs: z.number().int(),
  value: z.union([z.number(), z.boolean(), z.string().max(4096)]),
  unit: z.string().max(64).optional(),
  backfilled: z.boolean().optional(),
});
export type ClusterPoint = z.infer<typeof pointSchema>;

/** Registry changes every replica must act on (PROTOCOL.md §2: revocation within 1 s). */
const registryEventSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('device.revoked'), deviceId: deviceIdSchema, at: epochMs }),
  z.object({
    type: z.literal('device.updated'),
    deviceId: deviceIdSchema,
    fields: z.array(z.string().max(64)).max(32),
  }),
  z.object({ type: z.literal('token.revoked'), tokenId: z.string().min(1).max(128) }),
]);

/** Live-stream events, for SSE clients on the other replicas. */
const liveEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('readings'),
    publisher: deviceIdSchema,
    points: z.array(pointSchema).max(MAX_POINTS_PER_MESSAGE),
  }),
  z.object({
    type: z.literal('status'),
    deviceId: deviceIdSchema,
    online: z.boolean(),
    reason: shortText.nullable(),
    at: epochMs,
  }),
  // Alert and rollout messages are forwarded to SSE clients as they are; the fields the
  // stream filters on are checked, the rest is bounded by the message size.
  z.object({
    type: z.literal('alerts'),
    message: z.looseObject({
      v: z.literal(1),
      id: shortText,
      type: shortText,
      alert: z.looseObject({ device: deviceIdSchema }),
    }),
  }),
  z.object({
    type: z.literal('rollouts'),
    event: z.discriminatedUnion('kind', [
      z.looseObject({
        kind: z.literal('progress'),
        rolloutId: shortText,
        rollout: z.looseObject({}),
      }),
      z.looseObject({
        kind: z.literal('device'),
        rolloutId: shortText,
        device: z.looseObject({ deviceId: deviceIdSchema }),
      }),
    ]),
  }),
]);

export type RegistryClusterEvent = z.infer<typeof registryEventSchema>;
export type LiveClusterEvent = z.infer<typeof liveEventSchema>;
export type LiveType = LiveClusterEvent['type'];
export const LIVE_TYPES: readonly LiveType[] = ['readings', 'status', 'alerts', 'rollouts'];
export type ClusterEvent = RegistryClusterEvent | LiveClusterEvent;

const envelopeSchema = z.object({
  v: z.literal(1),
  /** The replica that sent it: a replica ignores its own messages. */
  origin: replicaIdSchema,
  /** Per-origin sequence number: with `origin`, the id a duplicate is recognised by. */
  seq: z.number().int().nonnegative(),
  event: z.union([registryEventSchema, liveEventSchema]),
});
export type ClusterEnvelope = z.infer<typeof envelopeSchema>;

export function isLiveEvent(event: ClusterEvent): event is LiveClusterEvent {
  return (LIVE_TYPES as readonly string[]).includes(event.type);
}

export function encodeEnvelope(envelope: ClusterEnvelope): Buffer {
  return Buffer.from(JSON.stringify(envelope), 'utf8');
}

export type Decoded =
  | { ok: true; envelope: ClusterEnvelope }
  | { ok: false; reason: 'too_large' | 'not_json' | 'invalid' };

/** Parses one message from the bus: size first, then JSON, then the schema. */
export function decodeEnvelope(raw: Buffer, maxBytes = MAX_CLUSTER_MESSAGE_BYTES): Decoded {
  if (raw.length > maxBytes) return { ok: false, reason: 'too_large' };
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    return { ok: false, reason: 'not_json' };
  }
  const parsed = envelopeSchema.safeParse(json);
  return parsed.success ? { ok: true, envelope: parsed.data } : { ok: false, reason: 'invalid' };
}

/** Splits readings into messages of at most `MAX_POINTS_PER_MESSAGE` points. */
export function chunkReadings(
  publisher: string,
  points: readonly ClusterPoint[],
): Extract<LiveClusterEvent, { type: 'readings' }>[] {
  const out: Extract<LiveClusterEvent, { type: 'readings' }>[] = [];
  for (let i = 0; i < points.length; i += MAX_POINTS_PER_MESSAGE) {
    out.push({ type: 'readings', publisher, points: points.slice(i, i + MAX_POINTS_PER_MESSAGE) });
  }
  return out;
}

/**
 * Remembers the last `capacity` message ids (origin and sequence number) so a message
 * delivered twice (a resubscription after a reconnect) is handled once.
 */
export class RecentIds {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = 10_000) {}

  /** True the first time an id is offered. */
  add(origin: string, seq: number): boolean {
    const id = `${origin}\u0000${seq}`;
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > this.capacity) {
      const oldest = this.seen.values().next().value as string;
      this.seen.delete(oldest);
    }
    return true;
  }
}
