import { ProtocolError } from './errors.js';
import { type DeviceId, isDeviceId } from './ids.js';
import { MAX_TOPIC_LENGTH } from './limits.js';
import { isWellFormedText } from './text.js';

/** PROTOCOL.md §4: every topic lives under this prefix. */
export const TOPIC_PREFIX = 'v1/devices/';

export const TOPIC_CHANNEL_NAMES = ['telemetry', 'state', 'events', 'commands'] as const;
export type TopicChannel = (typeof TOPIC_CHANNEL_NAMES)[number];

export type TopicDirection = 'device_to_cloud' | 'cloud_to_device';

export interface TopicChannelSpec {
  direction: TopicDirection;
  qos: 0 | 1 | 2;
  retained: boolean;
}

/** PROTOCOL.md §4 table: direction, QoS and retain flag of each channel. */
export const TOPIC_CHANNELS = {
  telemetry: { direction: 'device_to_cloud', qos: 1, retained: false },
  state: { direction: 'device_to_cloud', qos: 1, retained: true },
  events: { direction: 'device_to_cloud', qos: 1, retained: false },
  commands: { direction: 'cloud_to_device', qos: 1, retained: false },
} as const satisfies Record<TopicChannel, TopicChannelSpec>;

export interface ParsedTopic {
  deviceId: DeviceId;
  channel: TopicChannel;
}

/** `v1/devices/{id}/{channel}`, id as in PROTOCOL.md §1; nothing else matches. */
const TOPIC_PATTERN =
  /^v1\/devices\/([a-z0-9][a-z0-9._-]{0,63})\/(telemetry|state|events|commands)$/;

/**
 * Builds the topic of `channel` for `deviceId`. Throws `bad_device_id` for an id that is not
 * a device id, so a `/`, `+` or `#` can never be smuggled into a topic.
 */
export function buildTopic(deviceId: DeviceId, channel: TopicChannel): string {
  if (!isDeviceId(deviceId)) {
    throw new ProtocolError('bad_device_id', 'not a device id', { details: { deviceId } });
  }
  return `${TOPIC_PREFIX}${deviceId}/${channel}`;
}

/** The only way to spell a topic (STYLE.md: never an inline template string). */
export const topics = {
  telemetry: (deviceId: DeviceId): string => buildTopic(deviceId, 'telemetry'),
  state: (deviceId: DeviceId): string => buildTopic(deviceId, 'state'),
  events: (deviceId: DeviceId): string => buildTopic(deviceId, 'events'),
  commands: (deviceId: DeviceId): string => buildTopic(deviceId, 'commands'),
} as const satisfies Record<TopicChannel, (deviceId: DeviceId) => string>;

/**
 * Checks what MQTT requires of any topic name or filter before we look further: 1 to
 * MAX_TOPIC_LENGTH code units [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2], well-formed UTF-8
 * [MQTT-1.5.3-1]. Safe on any input.
 */
export function isValidTopicString(topic: unknown): topic is string {
  return (
    typeof topic === 'string' &&
    topic.length > 0 &&
    topic.length <= MAX_TOPIC_LENGTH &&
    isWellFormedText(topic)
  );
}

/**
 * Parses a PROTOCOL.md §4 topic. Returns null for anything that is not exactly
 * `v1/devices/{id}/{channel}`: other prefixes, bad ids, extra or empty levels, wildcards.
 */
export function parseTopic(topic: unknown): ParsedTopic | null {
  if (!isValidTopicString(topic)) return null;
  const match = TOPIC_PATTERN.exec(topic);
  if (match === null) return null;
  return { deviceId: match[1]!, channel: match[2] as TopicChannel };
}
