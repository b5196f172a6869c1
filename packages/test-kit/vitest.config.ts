import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration tests start real daemons; on a busy 2-core CI machine that can take seconds.
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
