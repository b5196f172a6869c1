import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites start real services and processes; keep them from competing for
    // the 2 cores of CI.
    fileParallelism: process.env.CI !== 'true',
  },
});
