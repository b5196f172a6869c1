import { describe, expect, it } from 'vitest';
import { taskFailed } from './vitest.js';

describe('taskFailed', () => {
  it('finds a failure anywhere in the suite tree', () => {
    const pass = { result: { state: 'pass' } };
    expect(taskFailed({ result: { state: 'run' }, tasks: [pass, pass] })).toBe(false);
    expect(
      taskFailed({
        result: { state: 'run' },
        tasks: [pass, { tasks: [pass, { result: { state: 'fail' } }] }],
      }),
    ).toBe(true);
  });

  it('counts a failed hook, which marks the suite itself', () => {
    expect(taskFailed({ result: { state: 'fail' }, tasks: [{ result: { state: 'skip' } }] })).toBe(
      true,
    );
  });

  it('treats tests not run yet as not failed', () => {
    expect(taskFailed({ tasks: [{}, { result: undefined }] })).toBe(false);
  });
});
