import { afterAll } from 'vitest';
import type { StopOptions } from './service.js';

interface Stoppable {
  stop(options?: StopOptions): Promise<void>;
}

/** The part of a vitest task that tells whether it, or anything inside it, failed. */
export interface TaskOutcome {
  result?: { state?: string } | undefined;
  tasks?: readonly TaskOutcome[];
}

export function taskFailed(task: TaskOutcome): boolean {
  return task.result?.state === 'fail' || (task.tasks ?? []).some(taskFailed);
}

export interface ServiceGroup {
  /** Tracks a service (or its start) so it is stopped after the suite; returns it. */
  add<T extends Stoppable>(service: T | Promise<T>): Promise<T>;
  /** Stops every tracked service, last added first. Called by the `afterAll` hook. */
  stopAll(options?: StopOptions): Promise<void>;
}

/**
 * Registers an `afterAll` in the current suite that stops the services added to the
 * returned group, keeping their work dirs (logs, data) when any test or hook of the suite
 * failed:
 *
 * ```ts
 * const services = useServices();
 * let redis: RedisHandle;
 * beforeAll(async () => {
 *   redis = await services.add(startRedis());
 * });
 * ```
 */
export function useServices(): ServiceGroup {
  const services: Stoppable[] = [];
  const group: ServiceGroup = {
    async add(service) {
      const started = await service;
      services.push(started);
      return started;
    },
    async stopAll(options) {
      const errors: unknown[] = [];
      for (const service of services.splice(0).reverse()) {
        try {
          await service.stop(options);
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length > 0) throw new AggregateError(errors, 'stopping services failed');
    },
  };
  // vitest parses the hook's source: the first parameter must be a destructuring pattern.
  // biome-ignore lint/correctness/noEmptyPattern: the suite is the second argument
  afterAll(async ({}, suite) => {
    await group.stopAll({ keepLogs: taskFailed(suite) });
  });
  return group;
}
