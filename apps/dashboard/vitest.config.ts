import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration tests start an ingest process and Chromium on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
