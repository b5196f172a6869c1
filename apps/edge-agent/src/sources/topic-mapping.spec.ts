import { describe, expect, it } from 'vitest';
import { matchTopic, TopicMapper, topicMappingSchema } from './topic-mapping.js';

const NOW = 1_767_225_600;
const bytes = (text: string) => new TextEncoder().encode(text);

function mapper(...mappings: object[]): TopicMapper {
  return new TopicMapper(mappings.map((m) => topicMappingSchema.parse(m)));
}

describe('matchTopic', () => {
  it.each([
    ['sensors/+/temperature', 'sensors/a/temperature', ['a']],
    ['sensors/+/temperature', 'sensors/a/humidity', undefined],
    ['sensors/+/+', 'sensors/a/b', ['a', 'b']],
    ['sensors/+/+', 'sensors/a', undefined],
    ['sensors/+/+', 'sensors/a/b/c', undefined],
    ['sensors/#', 'sensors/a/b/c', ['a/b/c']],
    ['sensors/#', 'sensors', ['']], // [MQTT-4.7.1-2] the parent level too
    ['#', '$SYS/broker/uptime', undefined], // [MQTT-4.7.2-1]
    ['+/x', '$SYS/x', undefined],
    ['$SYS/#', '$SYS/broker', ['broker']],
    ['a//b', 'a//b', []],
  ])('%s ~ %s', (filter, topic, expected) => {
    expect(matchTopic(filter.split('/'), topic)).toEqual(expected);
  });
});

describe('topicMappingSchema', () => {
  it.each([
    [{ filter: 'a/#/b', device: 'x', metric: 'm' }, 'a non-final #'],
    [{ filter: 'a/b+', device: 'x', metric: 'm' }, '+ inside a level'],
    [{ filter: 'a/+', device: '{2}', metric: 'm' }, 'a template naming no wildcard'],
    [{ filter: 'a/+', device: '{1}' }, 'a number payload without a metric'],
    [{ filter: 'a/+', device: '{1}', payload: 'json', path: 'v' }, 'a path without a metric'],
    [
      { filter: 'a/+', device: '{1}', payload: 'senml', metric: 'x' },
      'a senml payload with a metric',
    ],
  ])('refuses %j (%s)', (mapping, _why) => {
    expect(topicMappingSchema.safeParse(mapping).success).toBe(false);
  });
});

describe('TopicMapper', () => {
  it('maps a number payload with device and metric templates', () => {
    const m = mapper({ filter: 'sensors/+/+', device: '{1}', metric: '{2}', unit: 'Cel' });
    expect(m.map('sensors/boiler-7/temperature', bytes(' 21.5\n'), NOW)).toEqual({
      kind: 'readings',
      readings: [
        { device: 'boiler-7', metric: 'temperature', time: NOW, value: 21.5, unit: 'Cel' },
      ],
    });
    expect(m.map('sensors/b/on', bytes('true'), NOW)).toMatchObject({
      readings: [{ value: true }],
    });
  });

  it.each([
    ['sensors/Boiler/t', '1', 'device'], // device ids are lower case
    ['sensors/b/_t', '1', 'metric'],
    ['sensors/b/t', 'warm', 'value'],
    ['sensors/b/t', '', 'value'],
    ['sensors/b/t', '\u00ff', undefined],
  ])('%s %j → bad %s', (topic, payload, reason) => {
    const m = mapper({ filter: 'sensors/+/+', device: '{1}', metric: '{2}' });
    const result = m.map(topic, bytes(payload), NOW);
    if (reason === undefined) expect(result.kind).toBe('bad');
    else expect(result).toEqual({ kind: 'bad', reason });
  });

  it('refuses payloads that are not UTF-8', () => {
    const m = mapper({ filter: 'x/+', device: '{1}', metric: 'm' });
    expect(m.map('x/d', new Uint8Array([0xc3, 0x28]), NOW)).toEqual({
      kind: 'bad',
      reason: 'charset',
    });
  });

  it('reads one JSON value by path, with the message time', () => {
    const m = mapper({
      filter: 'sensors/+/env',
      device: '{1}',
      metric: 'temperature',
      payload: 'json',
      path: 'data.t',
      time: { field: 'ts', format: 'ms' },
    });
    expect(
      m.map('sensors/d1/env', bytes(`{"data":{"t":"19.5"},"ts":${NOW * 1000}}`), NOW + 5),
    ).toEqual({
      kind: 'readings',
      readings: [{ device: 'd1', metric: 'temperature', time: NOW, value: 19.5 }],
    });
    expect(m.map('sensors/d1/env', bytes('{"data":{}}'), NOW)).toEqual({
      kind: 'bad',
      reason: 'value',
    });
    expect(m.map('sensors/d1/env', bytes('{"data":{"t":1},"ts":"x"}'), NOW)).toEqual({
      kind: 'bad',
      reason: 'time',
    });
  });

  it('reads mapped JSON fields with units', () => {
    const m = mapper({
      filter: 'zigbee/+',
      device: '{1}',
      payload: 'json',
      map: { temperature: 'temperature', humidity: 'humidity', battery: 'battery' },
      units: { temperature: 'Cel', humidity: '%RH', battery: '%EL' },
    });
    const result = m.map(
      'zigbee/kitchen',
      bytes('{"temperature":21,"humidity":45.5,"linkquality":80}'),
      NOW,
    );
    expect(result).toEqual({
      kind: 'readings',
      readings: [
        { device: 'kitchen', metric: 'temperature', time: NOW, value: 21, unit: 'Cel' },
        { device: 'kitchen', metric: 'humidity', time: NOW, value: 45.5, unit: '%RH' },
      ],
    });
  });

  it('flattens a JSON object when nothing is mapped, and reads a bare JSON scalar', () => {
    const m = mapper(
      { filter: 'j/+', device: '{1}', payload: 'json' },
      { filter: 'k/+', device: '{1}', metric: 'v', payload: 'json' },
    );
    expect(m.map('j/d', bytes('{"a":1,"b":{"c":2}}'), NOW)).toMatchObject({
      readings: [
        { metric: 'a', value: 1 },
        { metric: 'b.c', value: 2 },
      ],
    });
    expect(m.map('j/d', bytes('{}'), NOW)).toEqual({ kind: 'bad', reason: 'no_values' });
    expect(m.map('j/d', bytes('{'), NOW)).toEqual({ kind: 'bad', reason: 'json' });
    expect(m.map('k/d', bytes('3.5'), NOW)).toMatchObject({
      readings: [{ metric: 'v', value: 3.5 }],
    });
  });

  it('reads a SenML pack (RFC 8428), relative times against now', () => {
    const m = mapper({ filter: 'sensors/+/senml', device: '{1}', payload: 'senml' });
    const pack = [
      { bn: '', bt: NOW, n: 'temperature', u: 'Cel', v: 21.5 },
      { n: 'door', vb: true, t: 1 },
    ];
    expect(m.map('sensors/d2/senml', bytes(JSON.stringify(pack)), NOW + 10)).toEqual({
      kind: 'readings',
      readings: [
        { device: 'd2', metric: 'temperature', time: NOW, value: 21.5, unit: 'Cel' },
        { device: 'd2', metric: 'door', time: NOW + 1, value: true },
      ],
    });
    const relative = [{ n: 'x', v: 1, t: -2 }];
    expect(m.map('sensors/d2/senml', bytes(JSON.stringify(relative)), NOW)).toMatchObject({
      readings: [{ time: NOW - 2 }],
    });
    expect(m.map('sensors/d2/senml', bytes('[{"n":"x","v":1,"zz":2}]'), NOW)).toEqual({
      kind: 'bad',
      reason: 'senml',
    });
    expect(m.map('sensors/d2/senml', bytes('{}'), NOW)).toEqual({ kind: 'bad', reason: 'senml' });
  });

  it('first matching mapping wins; others are unmatched', () => {
    const m = mapper(
      { filter: 'sensors/+/senml', device: '{1}', payload: 'senml' },
      { filter: 'sensors/+/+', device: '{1}', metric: '{2}' },
    );
    expect(m.map('sensors/a/senml', bytes('[{"n":"x","v":1}]'), NOW)).toMatchObject({
      readings: [{ metric: 'x' }],
    });
    expect(m.map('other/a', bytes('1'), NOW)).toEqual({ kind: 'unmatched' });
  });
});
