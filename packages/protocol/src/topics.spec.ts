import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { MAX_TOPIC_LENGTH } from './limits.js';
import {
  buildTopic,
  isValidTopicString,
  parseTopic,
  TOPIC_CHANNEL_NAMES,
  TOPIC_CHANNELS,
  topics,
} from './topics.js';

const deviceId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/);
const channel = fc.constantFrom(...TOPIC_CHANNEL_NAMES);

describe('topic builders', () => {
  it('spell v1/devices/{id}/<channel> (PROTOCOL.md §4)', () => {
    expect(topics.telemetry('gw-1')).toBe('v1/devices/gw-1/telemetry');
    expect(topics.state('gw-1')).toBe('v1/devices/gw-1/state');
    expect(topics.events('gw-1')).toBe('v1/devices/gw-1/events');
    expect(topics.commands('gw-1')).toBe('v1/devices/gw-1/commands');
  });

  it.each(['', 'GW', 'a/b', '+', '#', '-a', 'a b', 'a'.repeat(65), 'a\u0000'])(
    'refuses to build a topic for device id %j',
    (id) => {
      const build = () => topics.telemetry(id);
      expect(build).toThrow(ProtocolError);
      expect(build).toThrow(expect.objectContaining({ code: 'bad_device_id', kind: 'invalid' }));
    },
  );
});

describe('TOPIC_CHANNELS', () => {
  it('matches the PROTOCOL.md §4 table', () => {
    expect(TOPIC_CHANNELS).toEqual({
      telemetry: { direction: 'device_to_cloud', qos: 1, retained: false },
      state: { direction: 'device_to_cloud', qos: 1, retained: true },
      events: { direction: 'device_to_cloud', qos: 1, retained: false },
      commands: { direction: 'cloud_to_device', qos: 1, retained: false },
    });
    expect(Object.keys(TOPIC_CHANNELS)).toEqual([...TOPIC_CHANNEL_NAMES]);
  });
});

describe('parseTopic', () => {
  it('parses every channel', () => {
    for (const name of TOPIC_CHANNEL_NAMES) {
      expect(parseTopic(`v1/devices/th-01.a_b/${name}`)).toEqual({
        deviceId: 'th-01.a_b',
        channel: name,
      });
    }
  });

  it.each([
    'v1/devices/gw-1/telemetry/extra',
    'v1/devices/gw-1',
    'v1/devices//telemetry',
    'v1/devices/gw-1//telemetry',
    'v1/devices/+/commands',
    'v1/devices/#',
    'v1/devices/gw-1/#',
    'v1/devices/gw-1/+',
    '/v1/devices/gw-1/state',
    'v1/devices/gw-1/state/',
    'v2/devices/gw-1/state',
    'V1/devices/gw-1/state',
    'v1/device/gw-1/state',
    'v1/devices/gw-1/unknown',
    'v1/devices/gw-1/State',
    'v1/devices/GW-1/state',
    'v1/devices/-gw/state',
    `v1/devices/${'a'.repeat(65)}/state`,
    'v1/devices/gw-1\u0000/state',
    'v1/devices/gw-1/state\n',
    'v1/devices/gw-1/state\u0000',
    'v1/devices/gw\ud800/state',
    '$SYS/broker/uptime',
    '',
    'x'.repeat(MAX_TOPIC_LENGTH + 1),
  ])('refuses %j', (topic) => {
    expect(parseTopic(topic)).toBeNull();
  });

  it.each([undefined, null, 42, {}, ['v1/devices/a/state']])('refuses non-string %j', (value) => {
    expect(parseTopic(value)).toBeNull();
  });

  it('round-trips every valid device id and channel', () => {
    fc.assert(
      fc.property(deviceId, channel, (id, name) => {
        expect(parseTopic(buildTopic(id, name))).toEqual({ deviceId: id, channel: name });
        expect(buildTopic(id, name).length).toBeLessThanOrEqual(MAX_TOPIC_LENGTH);
      }),
    );
  });

  const topicish = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 120 }),
    fc.string({
      unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
      maxLength: 40,
    }),
    fc
      .array(
        fc.oneof(
          fc.constantFrom('v1', 'devices', '+', '#', '', 'gw-1', 'telemetry', 'commands', 'state'),
          fc.stringMatching(/^[a-zA-Z0-9._#+-]{0,6}$/),
        ),
        { maxLength: 7 },
      )
      .map((levels) => levels.join('/')),
  );

  it('never throws, and whatever parses re-builds to the same string', () => {
    fc.assert(
      fc.property(topicish, (topic) => {
        const parsed = parseTopic(topic);
        if (parsed !== null) expect(buildTopic(parsed.deviceId, parsed.channel)).toBe(topic);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('isValidTopicString', () => {
  it.each([
    ['a topic', 'v1/devices/gw-1/state', true],
    ['a surrogate pair', 'a/\ud83d\ude00', true],
    ['the longest allowed', 'x'.repeat(MAX_TOPIC_LENGTH), true],
    ['an empty string [MQTT-4.7.3-1]', '', false],
    ['U+0000 [MQTT-4.7.3-2]', 'a\u0000b', false],
    ['a lone high surrogate [MQTT-1.5.3-1]', 'a\ud800', false],
    ['a lone low surrogate', '\udc00a', false],
    ['reversed surrogates', '\ude00\ud83d', false],
    ['an over-long string', 'x'.repeat(MAX_TOPIC_LENGTH + 1), false],
    ['a number', 1, false],
  ])('%s → %s', (_what, topic, ok) => {
    expect(isValidTopicString(topic)).toBe(ok);
  });
});
