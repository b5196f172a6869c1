import { describe, expect, it } from 'vitest';
import {
  type BackoffConfig,
  backoffDelay,
  PortSupervisor,
  type SupervisorConfig,
} from './port-supervisor.js';

const BACKOFF: BackoffConfig = { initialMs: 250, maxMs: 30_000, factor: 2, jitter: 0.2 };

function supervisor(
  overrides: Partial<SupervisorConfig> = {},
  random: () => number = () => 0,
): PortSupervisor {
  return new PortSupervisor(
    {
      silentAfterMs: 30_000,
      identify: false,
      identifyEveryMs: 2_000,
      backoff: BACKOFF,
      ...overrides,
    },
    random,
  );
}

/** Drives a supervisor to `open` at time `at`. */
function openAt(s: PortSupervisor, at: number) {
  expect(s.start(at)).toEqual([{ type: 'resolve' }]);
  expect(s.handle({ type: 'resolved', path: '/dev/pts/3' }, at)).toEqual([
    { type: 'open', path: '/dev/pts/3' },
  ]);
  return s.handle({ type: 'opened' }, at);
}

describe('backoffDelay', () => {
  it.each([
    [0, 0, 250],
    [1, 0, 500],
    [2, 0, 1000],
    [6, 0, 16_000],
    [7, 0, 30_000], // capped
    [1000, 0, 30_000], // no overflow
    [0, 1, 200], // full jitter takes off 20%
    [7, 0.5, 27_000],
  ])('attempt %i, random %d → %i ms', (attempt, random, expected) => {
    expect(backoffDelay(BACKOFF, attempt, random)).toBeCloseTo(expected, 6);
  });

  it('grows, never exceeds the cap, and jitter stays within its fraction', () => {
    let previousBase = 0;
    for (let attempt = 0; attempt < 40; attempt++) {
      const base = backoffDelay(BACKOFF, attempt, 0);
      expect(base).toBeGreaterThanOrEqual(previousBase);
      expect(base).toBeLessThanOrEqual(BACKOFF.maxMs);
      for (const r of [0.1, 0.5, 0.99]) {
        const d = backoffDelay(BACKOFF, attempt, r);
        expect(d).toBeLessThanOrEqual(base);
        expect(d).toBeGreaterThanOrEqual(base * (1 - BACKOFF.jitter));
      }
      previousBase = base;
    }
  });
});

describe('PortSupervisor', () => {
  it('opens a port that is there and reports it open', () => {
    const s = supervisor();
    expect(s.state).toBe('missing');
    expect(openAt(s, 0)).toEqual([]);
    expect(s.state).toBe('open');
    expect(s.phase).toBe('open');
    expect(s.opens).toBe(1);
  });

  it('retries a missing port with growing, capped backoff and never gives up', () => {
    const s = supervisor();
    s.start(0);
    let now = 0;
    const delays: number[] = [];
    for (let i = 0; i < 12; i++) {
      expect(s.handle({ type: 'resolved', path: undefined }, now)).toEqual([]);
      expect(s.state).toBe('missing');
      const due = s.nextDueAt()!;
      delays.push(due - now);
      expect(s.tick(due - 1)).toEqual([]);
      expect(s.tick(due)).toEqual([{ type: 'resolve' }]);
      now = due;
    }
    expect(delays).toEqual([
      250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000, 30_000,
    ]);
    expect(s.lastError).toBe('port not found');
  });

  it('jitters the delay with the injected random source', () => {
    const s = supervisor({}, () => 0.5);
    s.start(0);
    s.handle({ type: 'resolved', path: undefined }, 0);
    expect(s.nextDueAt()).toBe(225); // 250 less half of 20%
  });

  it('retries after a failed open', () => {
    const s = supervisor();
    s.start(0);
    s.handle({ type: 'resolved', path: '/dev/ttyUSB0' }, 0);
    expect(s.handle({ type: 'open-failed', error: 'EACCES' }, 10)).toEqual([]);
    expect(s.state).toBe('missing');
    expect(s.lastError).toBe('EACCES');
    expect(s.tick(260)).toEqual([{ type: 'resolve' }]);
  });

  it('unplug: open → missing → reopened without a restart; frames reset the backoff', () => {
    const s = supervisor();
    openAt(s, 0);
    s.handle({ type: 'frame' }, 100);
    expect(s.handle({ type: 'closed', error: 'end of file' }, 1_000)).toEqual([]);
    expect(s.state).toBe('missing');
    expect(s.nextDueAt()).toBe(1_250);
    expect(s.tick(1_250)).toEqual([{ type: 'resolve' }]);
    // still unplugged: the link is gone
    s.handle({ type: 'resolved', path: undefined }, 1_250);
    expect(s.nextDueAt()).toBe(1_750);
    s.tick(1_750);
    s.handle({ type: 'resolved', path: '/dev/pts/9' }, 1_750);
    s.handle({ type: 'opened' }, 1_760);
    expect(s.state).toBe('open');
    expect(s.opens).toBe(2);
    expect(s.attempt).toBe(2);
    s.handle({ type: 'frame' }, 1_800);
    expect(s.attempt).toBe(0);
  });

  it('silent watchdog: no frame for silentAfter → silent, close, reopen; open again on a frame', () => {
    const s = supervisor({ silentAfterMs: 5_000 });
    openAt(s, 0);
    s.handle({ type: 'frame' }, 1_000);
    expect(s.nextDueAt()).toBe(6_000);
    expect(s.tick(5_999)).toEqual([]);
    expect(s.tick(6_000)).toEqual([{ type: 'close', reason: 'silent' }]);
    expect(s.state).toBe('silent');
    expect(s.handle({ type: 'closed' }, 6_010)).toEqual([]);
    expect(s.phase).toBe('waiting');
    expect(s.tick(6_260)).toEqual([{ type: 'resolve' }]);
    s.handle({ type: 'resolved', path: '/dev/pts/3' }, 6_260);
    s.handle({ type: 'opened' }, 6_270);
    expect(s.state).toBe('silent'); // open again, but still nothing heard
    s.handle({ type: 'frame' }, 6_500);
    expect(s.state).toBe('open');
  });

  it('a port that stays silent is reopened with growing backoff', () => {
    const s = supervisor({ silentAfterMs: 1_000 });
    openAt(s, 0);
    const waits: number[] = [];
    let now = 0;
    for (let i = 0; i < 4; i++) {
      now = s.nextDueAt()!;
      expect(s.tick(now)).toEqual([{ type: 'close', reason: 'silent' }]);
      s.handle({ type: 'closed' }, now);
      waits.push(s.nextDueAt()! - now);
      now = s.nextDueAt()!;
      s.tick(now);
      s.handle({ type: 'resolved', path: '/dev/pts/3' }, now);
      s.handle({ type: 'opened' }, now);
    }
    expect(waits).toEqual([250, 500, 1000, 2000]);
    expect(s.state).toBe('silent');
  });

  it('a hold keeps a quiet port open; the quiet time counts again from the release', () => {
    const s = supervisor({ silentAfterMs: 5_000 });
    openAt(s, 0);
    s.handle({ type: 'frame' }, 1_000);
    s.hold(true, 2_000);
    expect(s.held).toBe(true);
    expect(s.nextDueAt()).toBeUndefined();
    expect(s.tick(60_000)).toEqual([]);
    expect(s.state).toBe('open');
    s.hold(false, 60_000);
    expect(s.nextDueAt()).toBe(65_000);
    expect(s.tick(64_999)).toEqual([]);
    expect(s.tick(65_000)).toEqual([{ type: 'close', reason: 'silent' }]);
  });

  it('a held port that goes away is still reopened, and asked ID? when it is back', () => {
    const s = supervisor({ identify: true, silentAfterMs: 5_000 });
    openAt(s, 0);
    s.hold(true, 100);
    s.handle({ type: 'closed', error: 'EIO' }, 200);
    expect(s.state).toBe('missing');
    expect(s.tick(s.nextDueAt()!)).toEqual([{ type: 'resolve' }]);
    s.handle({ type: 'resolved', path: '/dev/pts/5' }, 500);
    expect(s.handle({ type: 'opened' }, 510)).toEqual([{ type: 'identify' }]);
    expect(s.nextDueAt()).toBe(2_510); // ID? again, no watchdog
  });

  it('silentAfter 0 turns the watchdog off', () => {
    const s = supervisor({ silentAfterMs: 0 });
    openAt(s, 0);
    expect(s.nextDueAt()).toBeUndefined();
    expect(s.tick(1e9)).toEqual([]);
    expect(s.state).toBe('open');
  });

  it('sends ID? after each open and again until an ID arrives', () => {
    const s = supervisor({ identify: true, identifyEveryMs: 2_000, silentAfterMs: 30_000 });
    expect(openAt(s, 0)).toEqual([{ type: 'identify' }]);
    expect(s.nextDueAt()).toBe(2_000);
    expect(s.tick(2_000)).toEqual([{ type: 'identify' }]);
    expect(s.tick(3_000)).toEqual([]);
    expect(s.tick(4_000)).toEqual([{ type: 'identify' }]);
    s.handle({ type: 'identified' }, 4_100);
    expect(s.state).toBe('open');
    expect(s.nextDueAt()).toBe(34_100); // only the watchdog remains
    // reopen: asks again
    s.handle({ type: 'closed' }, 5_000);
    s.tick(5_250);
    s.handle({ type: 'resolved', path: '/dev/pts/4' }, 5_250);
    expect(s.handle({ type: 'opened' }, 5_260)).toEqual([{ type: 'identify' }]);
  });

  it('ignores events that do not fit the phase', () => {
    const s = supervisor();
    expect(s.handle({ type: 'opened' }, 0)).toEqual([]);
    expect(s.handle({ type: 'frame' }, 0)).toEqual([]);
    expect(s.handle({ type: 'closed' }, 0)).toEqual([]);
    expect(s.handle({ type: 'resolved', path: '/x' }, 0)).toEqual([]);
    expect(s.phase).toBe('idle');
  });

  it('stop closes an open port and then stays quiet', () => {
    const s = supervisor();
    openAt(s, 0);
    expect(s.stop()).toEqual([{ type: 'close', reason: 'stop' }]);
    expect(s.handle({ type: 'closed' }, 10)).toEqual([]);
    expect(s.tick(1e9)).toEqual([]);
    expect(s.nextDueAt()).toBeUndefined();
    const waiting = supervisor();
    waiting.start(0);
    waiting.handle({ type: 'resolved', path: undefined }, 0);
    expect(waiting.stop()).toEqual([]);
    expect(waiting.tick(1e9)).toEqual([]);
  });
});
