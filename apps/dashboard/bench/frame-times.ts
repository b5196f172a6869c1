import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startIngest } from '@outpost/test-kit/ingest';
import type { Page } from 'playwright-core';
import { launchChromium } from '../test/support/chromium.js';
import { type FrameStats, startProbe, stopProbe } from '../test/support/frame-probe.js';
import { apiClient, type Reading, SimulatedDevice } from '../test/support/simulated-device.js';

/**
 * Frame times of the dashboard in Chromium, fed by a real ingest process: 5,000 devices in
 * the registry (bulk import, children of one gateway), 20 devices connecting and
 * disconnecting (status events), and one device streaming 20 metrics at 10 readings/s each
 * over MQTT (20 live charts). Prints and writes bench-results/dashboard.json; asserts nothing.
 */

const FLEET = 5000;
const METRICS = 20;
const RATE_HZ = 10;
const CHURN = 20;
const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 15_000);
// Run as apps/dashboard/bench/dist/bench/frame-times.js; results go to the repository root.
const OUT = fileURLToPath(new URL('../../../../../bench-results/dashboard.json', import.meta.url));

const log = (m: string) => process.stdout.write(`${m}\n`);

async function main() {
  const ingest = await startIngest({ env: { INGEST_LOG_LEVEL: 'warn' } });
  const admin = apiClient(ingest.url, ingest.adminToken);
  const devices: SimulatedDevice[] = [];
  const timers: NodeJS.Timeout[] = [];
  const browser = await launchChromium({ viewport: { width: 1920, height: 1080 } });
  try {
    log(`ingest ${ingest.url}; importing ${FLEET} devices`);
    const gateway = await SimulatedDevice.enroll(admin, 'gw-bench', { kind: 'gateway' });
    const rows = Array.from({ length: FLEET }, (_, i) => ({
      id: `sensor-${String(i).padStart(5, '0')}`,
      gateway: 'gw-bench',
      tags: { site: `site-${i % 12}`, line: `line-${i % 7}` },
    }));
    const imported = await admin('POST', '/api/v1/devices/import', rows);
    if (imported.status !== 200) throw new Error(`import: ${JSON.stringify(imported.body)}`);

    const streamer = await SimulatedDevice.enroll(admin, 'bench-dev', { tags: { site: 'bench' } });
    await streamer.connect(ingest.mqttUrl);
    devices.push(streamer, gateway);
    await gateway.connect(ingest.mqttUrl);
    const churners: SimulatedDevice[] = [];
    for (let i = 0; i < CHURN; i++) {
      churners.push(await SimulatedDevice.enroll(admin, `churn-${i}`, { tags: { site: 'churn' } }));
    }
    devices.push(...churners);

    // 20 metrics, 10 readings a second each, sent as 10 batches a second.
    const metrics = Array.from({ length: METRICS }, (_, i) => `m${String(i).padStart(2, '0')}`);
    let sent = 0;
    timers.push(
      setInterval(() => {
        const t = Date.now();
        const batch: Reading[] = metrics.map((metric, i) => ({
          metric,
          value: Math.sin(t / 2000 + i) * 10 + i,
          unit: 'V',
          timeMs: t,
        }));
        sent += batch.length;
        void streamer.publish(batch).catch(() => undefined);
      }, 1000 / RATE_HZ),
    );
    // Status events: one device connects or disconnects every 250 ms.
    let turn = 0;
    timers.push(
      setInterval(() => {
        const d = churners[turn++ % churners.length]!;
        void (d.connected ? d.close() : d.connect(ingest.mqttUrl)).catch(() => undefined);
      }, 250),
    );

    const page = await browser.context.newPage();
    await page.goto(ingest.url);
    await page.getByLabel('API token').fill(ingest.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();

    const results: { scenario: string; stats: FrameStats; note: string }[] = [];
    const measure = async (scenario: string, note: string, act?: (p: Page) => Promise<void>) => {
      await startProbe(page);
      const sentBefore = sent;
      if (act) await act(page);
      else await sleep(MEASURE_MS);
      const stats = await stopProbe(page);
      results.push({
        scenario,
        stats,
        note: `${note}; ${sent - sentBefore} readings sent meanwhile`,
      });
      log(`${scenario}: ${JSON.stringify(stats)}`);
    };

    // 1. The overview counting 5,000 devices, then kept current by status events.
    // While measuring, the page is driven with plain DOM calls: Playwright's locators run
    // their own queries over thousands of nodes inside the page being measured.
    await page.getByRole('heading', { name: 'Fleet overview' }).waitFor();
    await measure(
      'overview: count 5,000 devices, then live status',
      'scan (10 pages of 500) inside the window',
      async (p) => {
        const started = Date.now();
        await p.waitForFunction(
          () => /^[\d,]+ devices$/.test(document.querySelector('.scan')?.textContent ?? ''),
          null,
          { polling: 500, timeout: 60_000 },
        );
        const rest = MEASURE_MS - (Date.now() - started);
        if (rest > 0) await sleep(rest);
      },
    );

    // 2. The device list, paged through and scrolled: the default 100 rows a page, and the
    // largest page the API gives (500).
    for (const limit of [100, 500]) {
      await page.goto(`${ingest.url}/devices${limit === 100 ? '' : `?limit=${limit}`}`);
      await page
        .locator('tr[data-device]')
        .nth(limit - 1)
        .waitFor();
      await measure(
        `device list: ${limit}-row pages of 5,000, scrolling`,
        'scroll 900 px per 100 ms, next page every 3 s',
        async (p) => {
          const end = Date.now() + MEASURE_MS;
          let lastPage = Date.now();
          while (Date.now() < end) {
            await p.mouse.wheel(0, 900);
            await sleep(100);
            if (Date.now() - lastPage > 3000) {
              lastPage = Date.now();
              await p.evaluate(() => {
                document.querySelector<HTMLButtonElement>('.pager button:last-of-type')?.click();
                window.scrollTo(0, 0);
              });
            }
          }
        },
      );
    }

    // 3. 20 live charts, on a desktop and on a 4K wall screen.
    for (const [label, viewport] of [
      ['1920×1080', { width: 1920, height: 1080 }],
      ['3840×2160 wall', { width: 3840, height: 2160 }],
    ] as const) {
      await page.setViewportSize(viewport);
      for (const range of ['15m', '1h']) {
        await page.goto(`${ingest.url}/devices/bench-dev?range=${range}`);
        await page
          .locator('[data-metric]')
          .nth(METRICS - 1)
          .waitFor();
        await page
          .locator('.chart__status', { hasText: 'windows' })
          .nth(METRICS - 1)
          .waitFor();
        await sleep(1000);
        await measure(
          `device: 20 live charts, ${range}, ${label}`,
          `${METRICS} metrics × ${RATE_HZ}/s`,
        );
      }
    }

    const table = {
      kind: 'table',
      title: 'Dashboard frame times (Chromium 156 headless, real ingest, 5,000 devices)',
      columns: [
        'scenario',
        'frames',
        'p50 ms',
        'p95 ms',
        'p99 ms',
        'max ms',
        'long tasks',
        'long task ms',
        'layout shift',
      ],
      rows: results.map(({ scenario, stats: s }) => [
        scenario,
        s.frames,
        s.p50Ms,
        s.p95Ms,
        s.p99Ms,
        s.maxMs,
        s.longTasks,
        s.longTaskMs,
        s.layoutShift,
      ]),
      notes: [
        `Each scenario is measured for ${MEASURE_MS / 1000} s: requestAnimationFrame deltas, long tasks (> 50 ms) and layout shift (CLS) in the page.`,
        `Feed: a real ingest process (SQLite) with ${FLEET} imported devices; ${CHURN} MQTT devices connecting/disconnecting every 250 ms; one MQTT device publishing ${METRICS} metrics at ${RATE_HZ} readings/s each (signed batches).`,
        'Headless Chromium on a 2-core machine shares the CPU with the ingest and the load generator.',
        ...results.map((r) => `${r.scenario}: ${r.note}`),
      ],
    };
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(table, null, 2)}\n`);
    log(`wrote ${OUT}`);
  } finally {
    for (const t of timers) clearInterval(t);
    await browser.close();
    await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
    await ingest.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
