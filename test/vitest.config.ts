import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Whole-stack suites start many processes: one file at a time on a 2-core machine.
    fileParallelism: false,
  },
});
