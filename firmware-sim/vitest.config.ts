import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration tests run real pty pairs and a 20 KiB firmware update on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
