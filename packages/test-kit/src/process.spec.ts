import { describe, expect, it } from 'vitest';
import { ReadinessError, readinessMessage, waitFor } from './process.js';

describe('readinessMessage', () => {
  it('says what timed out, why the last check failed, and shows the log tail and path', () => {
    expect(
      readinessMessage({
        reason: 'timeout',
        what: 'HTTP 204 from http://127.0.0.1:8086/ping',
        timeoutMs: 30_000,
        lastError: new Error('connect ECONNREFUSED 127.0.0.1:8086'),
        processName: 'influxdb1',
        logPath: '/tmp/outpost-test/influxdb1-x/influxdb1.log',
        logTail: 'line 1\nline 2',
      }),
    ).toBe(
      [
        'timed out after 30000 ms waiting for HTTP 204 from http://127.0.0.1:8086/ping',
        'last check failed with: connect ECONNREFUSED 127.0.0.1:8086',
        '--- last lines of /tmp/outpost-test/influxdb1-x/influxdb1.log ---',
        'line 1',
        'line 2',
        '--- end of /tmp/outpost-test/influxdb1-x/influxdb1.log ---',
      ].join('\n'),
    );
  });

  it('says how the process ended when it exited first', () => {
    const message = readinessMessage({
      reason: 'exited',
      what: 'redis PING on 127.0.0.1:6400',
      timeoutMs: 30_000,
      processName: 'redis',
      exit: { code: null, signal: 'SIGSEGV' },
      logPath: '/w/redis.log',
      logTail: 'boom',
    });
    expect(message.split('\n')[0]).toBe(
      'redis was killed by SIGSEGV while waiting for redis PING on 127.0.0.1:6400',
    );
  });

  it('leaves out the log section without a process', () => {
    expect(readinessMessage({ reason: 'timeout', what: 'x', timeoutMs: 5 })).toBe(
      'timed out after 5 ms waiting for x',
    );
  });
});

describe('waitFor', () => {
  it('returns the first truthy value of the check', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { ready: calls } : undefined), {
      intervalMs: 1,
    });
    expect(value).toEqual({ ready: 3 });
  });

  it('times out with the description and the last error of the check', async () => {
    const err = await waitFor(
      () => {
        throw new Error('not yet');
      },
      { timeoutMs: 30, intervalMs: 5, what: 'the answer' },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReadinessError);
    expect((err as ReadinessError).reason).toBe('timeout');
    expect((err as ReadinessError).message).toBe(
      'timed out after 30 ms waiting for the answer\nlast check failed with: not yet',
    );
    expect((err as ReadinessError).logPath).toBeUndefined();
  });
});
