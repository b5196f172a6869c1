import { parseSenmlPack, resolveSenml, toReadings } from '@outpost/protocol/senml';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LOCAL_TOPICS, localMessages, topicTemplateProblem } from './local-messages.js';

const reading = {
  timeMs: 1_700_000_000_500,
  values: [
    ['t', 21.5],
    ['h', 40],
  ] as const,
};

describe('local messages', () => {
  it('publishes a bare number per metric on the default topics', () => {
    const format = {
      topic: DEFAULT_LOCAL_TOPICS.number,
      payload: 'number' as const,
      timeField: undefined,
    };
    expect(localMessages('room-1', reading, format)).toEqual([
      { topic: 'sensors/room-1/t', payload: '21.5' },
      { topic: 'sensors/room-1/h', payload: '40' },
    ]);
  });

  it('publishes one JSON object per reading, with its time in epoch seconds', () => {
    const messages = localMessages('room-2', reading, {
      topic: 'site/{device}/climate',
      payload: 'json',
      timeField: 'ts',
    });
    expect(messages).toHaveLength(1);
    expect(messages[0]!.topic).toBe('site/room-2/climate');
    expect(JSON.parse(messages[0]!.payload)).toEqual({ t: 21.5, h: 40, ts: 1_700_000_000.5 });
  });

  it('publishes a SenML pack per reading that resolves to the reading', () => {
    const [message] = localMessages('room-3', reading, {
      topic: DEFAULT_LOCAL_TOPICS.senml,
      payload: 'senml',
      timeField: undefined,
    });
    expect(message!.topic).toBe('sensors/room-3/senml');
    const pack = parseSenmlPack(JSON.parse(message!.payload));
    const back = toReadings(resolveSenml(pack, { now: 0 }), 'room-3');
    expect(back.map((r) => [r.metric, r.value, r.time])).toEqual([
      ['t', 21.5, 1_700_000_000.5],
      ['h', 40, 1_700_000_000.5],
    ]);
  });

  it.each([
    ['sensors/{device}/{metric}', 'number', undefined],
    ['sensors/{device}', 'json', undefined],
    ['sensors/{device}', 'number', /needs \{metric\}/],
    ['sensors/{device}/{metric}', 'senml', /no \{metric\}/],
    ['sensors/{room}/{metric}', 'number', /unknown placeholder \{room\}/],
    ['sensors/+/{metric}', 'number', /no \+ or #/],
    ['sensors/{device/{metric}', 'number', /braces/],
  ] as const)('checks the template %s for %s payloads', (template, payload, problem) => {
    const found = topicTemplateProblem(template, payload);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toMatch(problem);
  });
});
