import { formatHealthRevertLog, parseLine, type SerialLine } from '@outpost/protocol/serial-line';
import { describe, expect, it } from 'vitest';
import type { InstallOutcome } from './installer.js';
import {
  type FlashAction,
  type FlashEvent,
  type FlashTarget,
  SerialFlash,
  serialFlashConfigSchema,
} from './serial-flash.js';

// 1200 bytes in chunks of 512: 0+512, 512+512, 1024+176.
const TARGET: FlashTarget = {
  size: 1200,
  sha256: 'ab'.repeat(32),
  version: '2.0.0',
  fromVersion: '1.0.0',
};
const CONFIG = serialFlashConfigSchema.parse({
  chunkBytes: 512,
  ackTimeout: '1s',
  endTimeout: '5s',
  maxAttempts: 3,
  rebootTimeout: '10s',
  identifyEvery: '2s',
  trial: '5s',
  minTrialReadings: 2,
  progressEvery: '2s',
});

const line = (l: SerialLine): FlashEvent => ({ type: 'line', line: l });
const ok = (offset: number) => line({ kind: 'ok', offset });
const err = (offset: number, reason: string) => line({ kind: 'err', offset, reason });
const id = (version: string) => line({ kind: 'id', hardware: 'th-v2', serial: 'S1', version });
const reverted = (version: string) => line(parseLine(formatHealthRevertLog(version)));
const readings = (count: number): FlashEvent => ({ type: 'readings', count });
const tick: FlashEvent = { type: 'tick' };
const abort: FlashEvent = { type: 'abort' };

const begin: FlashAction = { type: 'begin' };
const end: FlashAction = { type: 'end' };
const identify: FlashAction = { type: 'identify' };
const chunk = (offset: number, length = 512): FlashAction => ({ type: 'chunk', offset, length });
const installing = (detail: string): FlashAction => ({
  type: 'report',
  step: { state: 'installing', detail },
});
const rebooting = (detail = 'image verified'): FlashAction => ({
  type: 'report',
  step: { state: 'rebooting', detail },
});
const trial: FlashAction = { type: 'report', step: { state: 'trial', detail: 'running 2.0.0' } };
const done = (outcome: InstallOutcome): FlashAction => ({
  type: 'done',
  outcome,
});

/** `[time, event, the actions expected]`; `start` starts the machine. */
type Step = [number, FlashEvent | 'start', FlashAction[]];

function drive(steps: Step[], target = TARGET): SerialFlash {
  const flash = new SerialFlash(target, CONFIG);
  for (const [index, [now, event, expected]] of steps.entries()) {
    const actions = event === 'start' ? flash.start(now) : flash.handle(event, now);
    expect(actions, `step ${index} at ${now} ms`).toEqual(expected);
  }
  return flash;
}

/** Start, BEGIN answered 0, the three chunks acknowledged at t = 10..30, END sent. */
const TRANSFER: Step[] = [
  [0, 'start', [installing('FW BEGIN, 1200 bytes'), begin]],
  [5, ok(0), [chunk(0)]],
  [10, ok(0), [chunk(512)]],
  [20, ok(512), [chunk(1024, 176)]],
  [30, ok(1024), [end]],
];

/** ...then END answered, the new ID, the trial running from t = 200. */
const IN_TRIAL: Step[] = [...TRANSFER, [100, ok(1200), [rebooting()]], [200, id('2.0.0'), [trial]]];

describe('SerialFlash', () => {
  it('flashes, reboots, passes the trial: succeeded with the new version', () => {
    const flash = drive([
      ...IN_TRIAL,
      [300, readings(1), []],
      [4_000, readings(5), []],
      [5_199, tick, []],
      [5_200, tick, [done({ state: 'succeeded', version: '2.0.0' })]],
    ]);
    expect(flash.phase).toBe('done');
    expect(flash.acked).toBe(1200);
    expect(flash.nextDueAt()).toBeUndefined();
  });

  it.each<[string, Step[]]>([
    [
      'resumes from the offset BEGIN answers',
      [
        [0, 'start', [installing('FW BEGIN, 1200 bytes'), begin]],
        [5, ok(1024), [installing('resuming at 1024 of 1200 bytes'), chunk(1024, 176)]],
        [10, ok(1024), [end]],
      ],
    ],
    [
      'goes straight to END when the device already holds every byte',
      [
        [0, 'start', [installing('FW BEGIN, 1200 bytes'), begin]],
        [5, ok(1200), [installing('resuming at 1200 of 1200 bytes'), end]],
      ],
    ],
    [
      'resends a chunk answered ERR, and goes on once it is taken',
      [
        ...TRANSFER.slice(0, 3),
        [15, err(512, 'crc'), [chunk(512)]],
        [16, err(512, 'flash'), [chunk(512)]],
        [20, ok(512), [chunk(1024, 176)]],
      ],
    ],
    [
      'a gap (ERR offset) asks BEGIN again and resumes where the device is',
      [
        ...TRANSFER.slice(0, 3),
        [15, err(512, 'offset'), [begin]],
        [16, ok(0), [chunk(0)]],
        [17, ok(0), [chunk(512)]],
      ],
    ],
    [
      'a device that lost the transfer (ERR state) is asked BEGIN again',
      [...TRANSFER.slice(0, 3), [15, err(512, 'state'), [begin]]],
    ],
    [
      'resends a chunk nobody answered when its timeout passes',
      [...TRANSFER.slice(0, 3), [1_009, tick, []], [1_010, tick, [chunk(512)]]],
    ],
    [
      'ignores the late answers to an earlier send of a chunk',
      [
        ...TRANSFER.slice(0, 3),
        [1_010, tick, [chunk(512)]],
        [1_100, ok(0), []],
        [1_200, err(0, 'crc'), []],
        [1_300, ok(512), [chunk(1024, 176)]],
      ],
    ],
    [
      'ignores readings, logs and IDs during the transfer',
      [
        ...TRANSFER.slice(0, 2),
        [6, readings(3), []],
        [7, line({ kind: 'log', text: 'hello' }), []],
        [8, id('1.0.0'), []],
        [10, ok(0), [chunk(512)]],
      ],
    ],
    [
      'END answered ERR size (the device lacks bytes) asks BEGIN again',
      [
        ...TRANSFER,
        [40, err(1024, 'size'), [begin]],
        [41, ok(1024), [installing('resuming at 1024 of 1200 bytes'), chunk(1024, 176)]],
      ],
    ],
    [
      'asks ID? while it waits for the rebooted device',
      [
        ...TRANSFER,
        [100, ok(1200), [rebooting()]],
        [2_100, tick, [identify]],
        [4_100, tick, [identify]],
        [4_200, id('2.0.0'), [trial]],
      ],
    ],
    [
      'END unanswered: waits for the ID, which shows the new version',
      [
        ...TRANSFER,
        [5_030, tick, [rebooting('no answer to FW END'), identify]],
        [5_100, id('2.0.0'), [trial]],
      ],
    ],
    [
      'END answer lost but the new ID arrives: on to the trial',
      [...TRANSFER, [90, id('2.0.0'), [rebooting('no answer to FW END'), trial]]],
    ],
  ])('%s', (_name, steps) => {
    drive(steps);
  });

  it('reports progress at most every progressEvery', () => {
    const big = { ...TARGET, size: 512 * 8 };
    const flash = new SerialFlash(big, CONFIG);
    const reports: string[] = [];
    const collect = (actions: FlashAction[]) => {
      for (const a of actions) if (a.type === 'report') reports.push(a.step.detail ?? '');
    };
    collect(flash.start(0));
    collect(flash.handle(ok(0), 0));
    for (let i = 0; i < 8; i++) collect(flash.handle(ok(512 * i), 1_000 * (i + 1)));
    expect(flash.phase).toBe('end');
    expect(reports).toEqual([
      'FW BEGIN, 4096 bytes',
      '1024 of 4096 bytes', // t = 2 s
      '2048 of 4096 bytes', // t = 4 s
      '3072 of 4096 bytes', // t = 6 s
      '4096 of 4096 bytes', // t = 8 s
    ]);
  });

  it.each<[string, Step[], [number, FlashEvent]]>([
    [
      'a chunk refused maxAttempts times',
      [
        ...TRANSFER.slice(0, 3),
        [15, err(512, 'flash'), [chunk(512)]],
        [16, err(512, 'flash'), [chunk(512)]],
      ],
      [17, err(512, 'flash')],
    ],
    [
      'a chunk unanswered maxAttempts times',
      [...TRANSFER.slice(0, 3), [1_010, tick, [chunk(512)]], [2_010, tick, [chunk(512)]]],
      [3_010, tick],
    ],
    [
      'BEGIN unanswered',
      [
        [0, 'start', [installing('FW BEGIN, 1200 bytes'), begin]],
        [1_000, tick, [begin]],
        [2_000, tick, [begin]],
      ],
      [3_000, tick],
    ],
    [
      'an image the device cannot stage',
      [[0, 'start', [installing('FW BEGIN, 1200 bytes'), begin]]],
      [5, err(0, 'too_large')],
    ],
    ['an image that fails verification (bad flash)', TRANSFER, [40, err(1200, 'verify')]],
    ['an image whose sha256 the device does not get', TRANSFER, [40, err(1200, 'sha256')]],
    [
      'gaps over and over',
      [
        ...TRANSFER.slice(0, 3),
        [15, err(512, 'offset'), [begin]],
        [16, ok(512), [chunk(512)]],
        [17, err(512, 'offset'), [begin]],
        [18, ok(512), [chunk(512)]],
        [19, err(512, 'offset'), [begin]],
        [20, ok(512), [chunk(512)]],
      ],
      [21, err(512, 'offset')],
    ],
    ['an abort during the transfer', TRANSFER.slice(0, 3), [15, abort]],
  ])('failed, the device still on 1.0.0: %s', (_name, steps, last) => {
    const flash = drive(steps);
    const [now, event] = last;
    const actions = flash.handle(event, now);
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({
      type: 'done',
      outcome: { state: 'failed', version: '1.0.0' },
    });
    expect(flash.phase).toBe('done');
    expect(flash.handle(ok(0), now + 1)).toEqual([]); // done is done
  });

  it('the rebooted device reports another version: failed, on what it runs', () => {
    const flash = drive([...TRANSFER, [100, ok(1200), [rebooting()]]]);
    expect(flash.handle(id('1.5.0'), 300)).toEqual([
      done({ state: 'failed', reason: 'device booted 1.5.0, expected 2.0.0', version: '1.5.0' }),
    ]);
  });

  it('END unanswered and the device still on the old version: failed', () => {
    const flash = drive([...TRANSFER, [5_030, tick, [rebooting('no answer to FW END'), identify]]]);
    expect(flash.handle(id('1.0.0'), 5_100)).toEqual([
      done({
        state: 'failed',
        reason: 'no answer to FW END; the device still runs 1.0.0',
        version: '1.0.0',
      }),
    ]);
  });

  it('a revert during the trial (failed health check) is rolled_back to the old version', () => {
    drive([
      ...IN_TRIAL,
      [300, readings(4), []],
      [
        1_200,
        reverted('1.0.0'),
        [
          done({
            state: 'rolled_back',
            reason: 'health check failed on the device, reverted to 1.0.0',
            version: '1.0.0',
          }),
        ],
      ],
    ]);
  });

  it('an ID with another version during the trial is a rollback too', () => {
    drive([
      ...IN_TRIAL,
      [
        1_200,
        id('1.0.0'),
        [
          done({
            state: 'rolled_back',
            reason: 'device went back to 1.0.0 during the trial',
            version: '1.0.0',
          }),
        ],
      ],
    ]);
  });

  it('a revert before the new ID is a rollback', () => {
    drive([
      ...TRANSFER,
      [100, ok(1200), [rebooting()]],
      [
        150,
        reverted('1.0.0'),
        [
          done({
            state: 'rolled_back',
            reason: 'device reverted to 1.0.0 before the trial',
            version: '1.0.0',
          }),
        ],
      ],
    ]);
  });

  it('no ID after the reboot: failed, the version not confirmed', () => {
    const flash = drive([...TRANSFER, [100, ok(1200), [rebooting()]]]);
    const outcome = flash.handle(tick, 10_100);
    expect(outcome).toEqual([
      done({
        state: 'failed',
        reason: 'no ID within 10s after FW END; version not confirmed',
        version: '2.0.0',
      }),
    ]);
  });

  it('too few readings in the trial: failed, still on the new version', () => {
    drive([
      ...IN_TRIAL,
      [300, readings(1), []],
      [
        5_200,
        tick,
        [
          done({
            state: 'failed',
            reason: '1 readings in the 5s trial, 2 needed',
            version: '2.0.0',
          }),
        ],
      ],
    ]);
  });

  it('readings before the trial do not count for it', () => {
    drive([
      ...TRANSFER,
      [50, readings(10), []],
      [100, ok(1200), [rebooting()]],
      [150, readings(10), []],
      [200, id('2.0.0'), [trial]],
      [
        5_200,
        tick,
        [
          done({
            state: 'failed',
            reason: '0 readings in the 5s trial, 2 needed',
            version: '2.0.0',
          }),
        ],
      ],
    ]);
  });

  it.each<[string, Step[], InstallOutcome]>([
    [
      'while the device verifies',
      TRANSFER,
      {
        state: 'failed',
        reason: 'aborted while the device verified the image; version not confirmed',
        version: '1.0.0',
      },
    ],
    [
      'during the reboot',
      [...TRANSFER, [100, ok(1200), [rebooting()]]],
      {
        state: 'failed',
        reason: 'aborted during rebooting; the device runs 2.0.0, not confirmed',
        version: '2.0.0',
      },
    ],
    [
      'during the trial',
      IN_TRIAL,
      {
        state: 'failed',
        reason: 'aborted during trial; the device runs 2.0.0, not confirmed',
        version: '2.0.0',
      },
    ],
  ])('an abort %s ends with what the device runs', (_name, steps, outcome) => {
    const flash = drive(steps);
    expect(flash.handle(abort, 1_000)).toEqual([done(outcome)]);
  });

  it('nextDueAt follows the step in progress', () => {
    const flash = new SerialFlash(TARGET, CONFIG);
    expect(flash.nextDueAt()).toBeUndefined();
    flash.start(0);
    expect(flash.nextDueAt()).toBe(1_000);
    flash.handle(ok(0), 500);
    expect(flash.nextDueAt()).toBe(1_500);
  });

  it('refuses a config whose chunks would break the line limit', () => {
    expect(serialFlashConfigSchema.safeParse({ chunkBytes: 513 }).success).toBe(false);
    expect(serialFlashConfigSchema.parse({}).chunkBytes).toBe(512);
  });
});
