import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

/** Debian's Chromium: no browser is ever downloaded. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for this machine: running as root needs --no-sandbox; on a closed network Chromium
 * must not try to reach Google's services (updates, sync, QUIC probes).
 */
const ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

export interface Chromium {
  context: BrowserContext;
  /** Closes the browser (its process ends with it) and removes its profile. */
  close(): Promise<void>;
}

/** Chromium with a fresh profile directory (its --user-data-dir), headless. */
export async function launchChromium(
  options: { viewport?: { width: number; height: number } } = {},
): Promise<Chromium> {
  const profile = await mkdtemp(join(tmpdir(), 'outpost-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: options.viewport ?? { width: 1280, height: 900 },
    // A closed network: no service worker caches or downloads in tests.
    serviceWorkers: 'block',
    acceptDownloads: false,
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
