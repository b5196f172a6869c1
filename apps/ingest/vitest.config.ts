import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Integration suites start real services; keep them from competing for 2 cores.
    fileParallelism: process.env.CI !== 'true',
  },
});
