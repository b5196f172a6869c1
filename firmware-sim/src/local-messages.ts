import { compressPack, type Reading } from '@outpost/protocol/senml';
import { isValidTopicString } from '@outpost/protocol/topics';
import type { OutgoingMessage } from './batch-outbox.js';
import type { TimedReading } from './telemetry-batch.js';

/**
 * Messages of a sensor on a site's local MQTT broker (pure), the kind the edge agent's local
 * MQTT source maps to readings: a bare `number` per metric, one `json` object per reading,
 * or a `senml` pack (RFC 8428) per reading. Topics come from a template with `{device}` and,
 * for `number`, `{metric}`.
 */

export const LOCAL_PAYLOADS = ['number', 'json', 'senml'] as const;
export type LocalPayload = (typeof LOCAL_PAYLOADS)[number];

/** What the agent's default mappings expect (`sensors/+/senml`, `sensors/+/+`). */
export const DEFAULT_LOCAL_TOPICS: Record<LocalPayload, string> = {
  number: 'sensors/{device}/{metric}',
  json: 'sensors/{device}/json',
  senml: 'sensors/{device}/senml',
};

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** Why a topic template cannot serve `payload`, or undefined when it can. */
export function topicTemplateProblem(template: string, payload: LocalPayload): string | undefined {
  const names = [...template.matchAll(PLACEHOLDER)].map((m) => m[1]);
  const unknown = names.filter((n) => n !== 'device' && n !== 'metric');
  if (unknown.length > 0) return `unknown placeholder {${unknown[0]}}: use {device} and {metric}`;
  const rest = template.replace(PLACEHOLDER, 'x');
  // [MQTT-3.3.2-2] no wildcards in a topic name; braces only around placeholders.
  if (/[+#{}]/.test(rest)) return 'a topic name has no + or #, and braces only around names';
  if (!isValidTopicString(rest)) return 'not a valid MQTT topic name';
  const hasMetric = names.includes('metric');
  if (payload === 'number' && !hasMetric) return 'a number payload needs {metric} in the topic';
  if (payload !== 'number' && hasMetric)
    return `a ${payload} payload carries every metric: no {metric}`;
  return undefined;
}

export function fillTopic(template: string, device: string, metric = ''): string {
  return template.replace(PLACEHOLDER, (_, name: string) => (name === 'device' ? device : metric));
}

export interface LocalFormat {
  topic: string;
  payload: LocalPayload;
  /** `json`: the field holding the reading's time in epoch seconds; none when undefined. */
  timeField: string | undefined;
}

/** The messages that carry one reading. */
export function localMessages(
  deviceId: string,
  reading: TimedReading,
  format: LocalFormat,
): OutgoingMessage[] {
  switch (format.payload) {
    case 'number':
      return reading.values.map(([metric, value]) => ({
        topic: fillTopic(format.topic, deviceId, metric),
        payload: String(value),
      }));
    case 'json': {
      const object: Record<string, number> = {};
      for (const [metric, value] of reading.values) object[metric] = value;
      if (format.timeField !== undefined) object[format.timeField] = reading.timeMs / 1000;
      return [{ topic: fillTopic(format.topic, deviceId), payload: JSON.stringify(object) }];
    }
    case 'senml': {
      const readings: Reading[] = reading.values.map(([metric, value]) => ({
        deviceId,
        metric,
        time: reading.timeMs / 1000,
        value,
        backfilled: false,
        clock: undefined,
      }));
      const pack = compressPack(readings, deviceId);
      return [{ topic: fillTopic(format.topic, deviceId), payload: JSON.stringify(pack) }];
    }
  }
}
