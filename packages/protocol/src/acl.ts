import type { DeviceId, DeviceKind } from './ids.js';
import { isValidTopicString, parseTopic, TOPIC_CHANNELS, type TopicDirection } from './topics.js';

/** The authenticated device behind an MQTT session or HTTP request. */
export interface Actor {
  deviceId: DeviceId;
  kind: DeviceKind;
  /** Ids of the devices this gateway acts for; ignored unless `kind` is `gateway`. */
  children: ReadonlySet<DeviceId> | readonly DeviceId[];
}

export const ACL_DENY_REASONS = [
  'bad_topic',
  'wildcard',
  'not_own_topic',
  'not_child',
  'wrong_direction',
] as const;
export type AclDenyReason = (typeof ACL_DENY_REASONS)[number];

export type AclDecision = { ok: true } | { ok: false; reason: AclDenyReason };

const ALLOW: AclDecision = Object.freeze({ ok: true });
const deny = (reason: AclDenyReason): AclDecision => ({ ok: false, reason });

function hasChild(children: Actor['children'], deviceId: DeviceId): boolean {
  return Array.isArray(children)
    ? children.includes(deviceId)
    : (children as ReadonlySet<DeviceId>).has(deviceId);
}

/**
 * PROTOCOL.md §4: true when `actor` may act for `deviceId`: itself, or a child when the
 * actor is a gateway. Also the check for every reading of a gateway's batch (§5).
 */
export function mayActFor(actor: Actor, deviceId: DeviceId): boolean {
  if (deviceId === actor.deviceId) return true;
  return actor.kind === 'gateway' && hasChild(actor.children, deviceId);
}

function decide(actor: Actor, topic: string, direction: TopicDirection): AclDecision {
  if (!isValidTopicString(topic)) return deny('bad_topic');
  // Wildcards are refused everywhere (PROTOCOL.md §4); in a PUBLISH they are a protocol
  // error anyway [MQTT-3.3.2-2].
  if (topic.includes('+') || topic.includes('#')) return deny('wildcard');
  const parsed = parseTopic(topic);
  if (parsed === null) return deny('bad_topic');
  if (TOPIC_CHANNELS[parsed.channel].direction !== direction) return deny('wrong_direction');
  if (mayActFor(actor, parsed.deviceId)) return ALLOW;
  return deny(actor.kind === 'gateway' ? 'not_child' : 'not_own_topic');
}

/**
 * PROTOCOL.md §4: a device publishes only to the telemetry, state and events topics of
 * itself or, if it is a gateway, of one of its children. Never to `commands`.
 */
export function mayPublish(actor: Actor, topic: string): AclDecision {
  return decide(actor, topic, 'device_to_cloud');
}

/**
 * PROTOCOL.md §4: a device subscribes only to its own `commands` topic or, if it is a
 * gateway, a child's. Any wildcard filter is refused.
 */
export function maySubscribe(actor: Actor, topicFilter: string): AclDecision {
  return decide(actor, topicFilter, 'cloud_to_device');
}

export function isPublishAllowed(actor: Actor, topic: string): boolean {
  return mayPublish(actor, topic).ok;
}

export function isSubscribeAllowed(actor: Actor, topicFilter: string): boolean {
  return maySubscribe(actor, topicFilter).ok;
}
