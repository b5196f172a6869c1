import { describe, expect, it } from 'vitest';
import { deviceEventSchema, EVENT_TYPES } from './events.js';
import { MAX_TEXT_LENGTH } from './limits.js';

const at = 1_767_225_600.25;
const rolloutId = '0b6f3c1e-8a41-4c2e-9d7e-3f1a2b4c5d6e';

describe('deviceEventSchema (PROTOCOL.md §7)', () => {
  it.each([
    { v: 1, type: 'ota.progress', at, rolloutId, component: 'main', state: 'downloading' },
    {
      v: 1,
      type: 'ota.progress',
      at,
      rolloutId,
      component: 'main',
      state: 'rolled_back',
      detail: 'health probe failed',
    },
    {
      v: 1,
      type: 'ota.result',
      at,
      rolloutId,
      component: 'main',
      state: 'succeeded',
      version: '1.4.2',
    },
    {
      v: 1,
      type: 'ota.result',
      at,
      rolloutId,
      component: 'main',
      state: 'failed',
      reason: 'sha256 mismatch',
    },
    { v: 1, type: 'log', at, level: 'warn', message: 'port /dev/ttyUSB0 silent for 60 s' },
    { v: 1, type: 'log', at, level: 'info', message: 'started', source: 'agent' },
    { v: 1, type: 'alert', at, code: 'disk.full', severity: 'critical', message: '98% used' },
  ])('accepts %o', (event) => {
    expect(deviceEventSchema.parse(event)).toEqual(event);
  });

  it('covers every event type', () => {
    expect(EVENT_TYPES).toEqual(['ota.progress', 'ota.result', 'log', 'alert']);
  });

  it.each([
    ['an unknown type', { v: 1, type: 'ota.done', at }, 'type'],
    ['no at', { v: 1, type: 'log', level: 'info', message: 'x' }, 'at'],
    ['a negative at', { v: 1, type: 'log', at: -1, level: 'info', message: 'x' }, 'at'],
    [
      'an unknown OTA state',
      { v: 1, type: 'ota.progress', at, rolloutId, component: 'main', state: 'done' },
      'state',
    ],
    [
      'a non-terminal result',
      { v: 1, type: 'ota.result', at, rolloutId, component: 'main', state: 'trial' },
      'state',
    ],
    [
      'a failure without reason',
      { v: 1, type: 'ota.result', at, rolloutId, component: 'main', state: 'rolled_back' },
      'reason',
    ],
    [
      'a bad rollout id',
      { v: 1, type: 'ota.progress', at, rolloutId: 'a/b', component: 'main', state: 'offered' },
      'rolloutId',
    ],
    ['an unknown log level', { v: 1, type: 'log', at, level: 'trace', message: 'x' }, 'level'],
    ['an empty log message', { v: 1, type: 'log', at, level: 'info', message: '' }, 'message'],
    [
      'an over-long log message',
      { v: 1, type: 'log', at, level: 'info', message: 'x'.repeat(MAX_TEXT_LENGTH + 1) },
      'message',
    ],
    ['an unknown severity', { v: 1, type: 'alert', at, code: 'x', severity: 'high' }, 'severity'],
    [
      'an alert code with spaces',
      { v: 1, type: 'alert', at, code: 'disk full', severity: 'info' },
      'code',
    ],
  ])('refuses %s at %s', (_what, event, path) => {
    const result = deviceEventSchema.safeParse(event);
    expect(result.error?.issues[0]?.path.join('.')).toBe(path);
  });
});
