import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '@outpost/signing/keys';
import { signManifest } from '@outpost/signing/manifest';
import { type IngestHandle, startIngest } from '@outpost/test-kit/ingest';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Chromium, launchChromium } from './support/chromium.js';
import { startProbe, stopProbe } from './support/frame-probe.js';
import { type Api, apiClient, SimulatedDevice } from './support/simulated-device.js';

// Real: the built ingest (a process, SQLite, its MQTT broker) serving the built dashboard
// from apps/dashboard/dist by default; a simulated device enrolled through the API that
// publishes signed batches over MQTT; Debian's Chromium driven by playwright-core. Mocked:
// nothing.

const DIST = fileURLToPath(new URL('../dist/index.html', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const DEVICE = 'boiler-7';

let ingest: IngestHandle;
let admin: Api;
let browser: Chromium;
let page: Page;
let device: SimulatedDevice;
let token: string;
/** Every URL the browser requested, and the API requests without a bearer token. */
const requested: string[] = [];
const unauthenticatedApi: string[] = [];
const cspViolations: string[] = [];
let feeding: NodeJS.Timeout | undefined;
let temperature = 21;

const shot = (name: string) => page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });

/** Readings once a second, as a device does; the value follows `temperature`. */
function feed(): void {
  feeding = setInterval(() => {
    if (!device.connected) return;
    const wobble = Math.sin(Date.now() / 5000);
    void device
      .publish([
        { metric: 'temperature', value: temperature + wobble, unit: 'Cel' },
        { metric: 'pressure', value: 1.2 + wobble / 10, unit: 'bar' },
      ])
      .catch(() => undefined);
  }, 1000);
}

async function pointsOf(metric: string): Promise<number> {
  const value = await page.locator(`[data-metric="${metric}"]`).getAttribute('data-points');
  return Number(value ?? 0);
}

describe('dashboard against a real ingest', () => {
  beforeAll(async () => {
    if (!existsSync(DIST))
      throw new Error(`${DIST} not found: build the dashboard first (npm run build)`);
    await mkdir(ARTIFACTS, { recursive: true });
    ingest = await startIngest({
      env: {
        INGEST_CONNECTIVITY_FLUSH_MS: '100',
        INGEST_ALERT_TICK_MS: '200',
        INGEST_OTA_TICK_MS: '200',
      },
    });
    admin = apiClient(ingest.url, ingest.adminToken);
    // An operator's token: a JWT whose roles the dashboard reads to offer acknowledgement.
    const issued = await admin('POST', '/api/v1/tokens', { name: 'ana', roles: ['operator'] });
    expect(issued.status).toBe(201);
    token = (issued.body as { token: string }).token;

    device = await SimulatedDevice.enroll(admin, DEVICE, {
      tags: { site: 'north', room: 'boiler' },
    });
    await device.connect(ingest.mqttUrl);
    await device.publishState({
      firmware: { version: '1.4.2', components: { main: '1.4.2', radio: '0.9.1' } },
      agent: { version: '0.3.0' },
      uptime_s: 3600,
      outbox: { pending: 0, bytes: 0, oldest_s: 0, dropped: 0 },
      ports: [
        { path: '/dev/serial/by-id/usb-FTDI_A10K3Z-if00-port0', state: 'open' },
        { path: '/dev/serial/by-id/usb-Prolific_B22-if00-port0', state: 'missing' },
      ],
    });
    // Ten minutes of history, one reading every 20 s.
    const now = Date.now();
    const history = [];
    for (let t = now - 600_000; t < now - 5000; t += 20_000) {
      history.push({
        metric: 'temperature',
        value: 20 + Math.sin(t / 60_000),
        unit: 'Cel',
        timeMs: t,
      });
      history.push({ metric: 'pressure', value: 1.1, unit: 'bar', timeMs: t });
    }
    await device.publish(history);
    const rule = await admin('POST', '/api/v1/alert-rules', {
      name: 'Boiler too hot',
      metric: 'temperature',
      above: 80,
      clearBelow: 70,
      scope: { devices: [DEVICE] },
      severity: 'critical',
    });
    expect(rule.status).toBe(201);
    feed();

    browser = await launchChromium();
    browser.context.on('request', (r) => {
      requested.push(r.url());
      const url = new URL(r.url());
      if (url.pathname.startsWith('/api/v1/') && !r.headers().authorization) {
        unauthenticatedApi.push(url.pathname);
      }
    });
    page = await browser.context.newPage();
    page.on('console', (m) => {
      if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });

  afterAll(async () => {
    clearInterval(feeding);
    await browser?.close();
    await device?.close();
    await ingest?.stop();
  });

  it('serves the built app at / with a strict Content-Security-Policy', async () => {
    for (const path of ['/', '/devices/boiler-7?range=1h']) {
      const res = await fetch(`${ingest.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const csp = res.headers.get('content-security-policy') ?? '';
      for (const directive of [
        "default-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
      ]) {
        expect(csp).toContain(directive);
      }
      expect(csp).not.toContain('unsafe-inline');
      const html = await res.text();
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html).not.toMatch(/\sstyle=/);
      const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      const js = await fetch(`${ingest.url}${asset}`);
      expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    }
    const missing = await fetch(`${ingest.url}/api/v1/nothing-here`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
  });

  it('signs in with an API token and shows the fleet', async () => {
    await page.goto(ingest.url);
    await page.getByLabel('API token').fill('not-a-valid-token-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not accepted');
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Fleet overview' }).waitFor();
    await expect
      .poll(() => page.locator('[data-count="Online"]').textContent(), { timeout: 10_000 })
      .toBe('1');
    await expect.poll(() => page.locator('[data-stream]').getAttribute('data-stream')).toBe('live');
    expect(await page.locator('.grants').textContent()).toBe('operator');
    await shot('01-overview');
  });

  it('finds the device in the list by search and tag', async () => {
    await page.getByRole('link', { name: 'Devices' }).click();
    await page.getByLabel('Search').fill('boiler');
    await page.getByLabel('Tags').fill('site=north');
    await expect.poll(() => page.url()).toContain('tag=site%3Dnorth');
    const row = page.locator(`tr[data-device="${DEVICE}"]`);
    await row.waitFor();
    expect(await row.locator('[data-state]').textContent()).toBe('online');
    expect(await row.textContent()).toContain('1.4.2');
    await page.getByLabel('Tags').fill('site=south');
    await page.getByText('No device matches these filters.').waitFor();
    await page.getByLabel('Tags').fill('site=north');
    await row.waitFor();
    await shot('02-devices');
  });

  it('works from the keyboard: skip link, navigation, visible focus', async () => {
    await page.goto(`${ingest.url}/devices`);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('main');
    await page.keyboard.press('Shift+Tab');
    for (let i = 0; i < 12; i++) {
      if ((await page.evaluate(() => document.activeElement?.textContent)) === 'Overview') break;
      await page.keyboard.press('Shift+Tab');
    }
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe(
      'solid',
    );
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Fleet overview' }).waitFor();
    await page.getByRole('link', { name: 'Devices' }).focus();
    await page.keyboard.press('Enter');
    await page.locator(`tr[data-device="${DEVICE}"]`).waitFor();
  });

  it('opens the device and watches its chart gain points as readings stream', async () => {
    await page.locator(`tr[data-device="${DEVICE}"]`).getByRole('link').click();
    await page.getByRole('heading', { name: DEVICE }).waitFor();
    // 15 minutes: 5 s windows, so a reading a second adds a point every 5 s.
    await page.getByRole('radio', { name: '15m' }).check();
    await expect.poll(() => page.url()).toContain('range=15m');
    const chart = page.locator('[data-metric="temperature"]');
    await chart.waitFor();
    await expect.poll(() => pointsOf('temperature'), { timeout: 10_000 }).toBeGreaterThan(10);
    await page.getByText('5s windows').first().waitFor();
    await startProbe(page);
    const before = await pointsOf('temperature');
    await expect
      .poll(() => pointsOf('temperature'), { timeout: 20_000 })
      .toBeGreaterThanOrEqual(before + 2);
    // Points streamed in and nothing on the page moved.
    expect((await stopProbe(page)).layoutShift).toBe(0);
    expect(await page.locator('[data-metric="pressure"]').count()).toBe(1);
    // Reported state: firmware and serial ports.
    await page.getByText('/dev/serial/by-id/usb-Prolific_B22-if00-port0').waitFor();
    expect(await page.locator('.ports').textContent()).toContain('missing');
    expect(await page.locator('.facts').nth(1).textContent()).toContain('1.4.2');
    await shot('03-device-detail');
  });

  it('reconnects the stream by itself when the server restarts', async () => {
    await ingest.restart();
    await expect
      .poll(() => page.locator('[data-stream]').getAttribute('data-stream'), { timeout: 30_000 })
      .toBe('live');
    const before = await pointsOf('temperature');
    await expect.poll(() => pointsOf('temperature'), { timeout: 20_000 }).toBeGreaterThan(before);
  });

  it('acknowledges a firing alert and shows why it fired', async () => {
    temperature = 95;
    await page.getByRole('link', { name: 'Alerts' }).click();
    const item = page.locator('li.alert').filter({ hasText: 'Boiler too hot' });
    await expect
      .poll(
        () =>
          item
            .locator('[data-alert-state]')
            .textContent()
            .catch(() => null),
        { timeout: 20_000 },
      )
      .toBe('firing');
    expect(await item.locator('.alert__summary').textContent()).toMatch(
      /temperature on boiler-7 is [\d.]+, above 80/,
    );
    await shot('04-alert-firing');
    await item.getByRole('button', { name: 'Acknowledge' }).click();
    await item.locator('[data-acknowledged]').waitFor();
    expect(await item.locator('[data-acknowledged]').textContent()).toContain(
      'Acknowledged by ana',
    );
    const alerts = await admin('GET', `/api/v1/alerts?device=${DEVICE}`);
    const acked = (alerts.body as { items: { acknowledgedBy: string | null }[] }).items[0];
    expect(acked?.acknowledgedBy).toBe('ana');
    // The stream's transitions, with their explanation.
    await item.getByText(/Transitions seen here/).click();
    await item.getByText('Condition').first().waitFor();
    await shot('05-alert-acknowledged');
    temperature = 21;
  });

  it('reads at 360 px without horizontal scrolling', async () => {
    await page.setViewportSize({ width: 360, height: 780 });
    await page.getByRole('link', { name: 'Devices' }).click();
    await page.locator(`tr[data-device="${DEVICE}"]`).waitFor();
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - window.innerWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await shot('06-devices-360px');
    await page.goto(`${ingest.url}/devices/${DEVICE}`);
    await page.locator('[data-metric="temperature"]').waitFor();
    expect(
      await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
    ).toBeLessThanOrEqual(0);
    await shot('07-device-360px');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('offers acknowledgement only to roles that may acknowledge', async () => {
    const viewer = await admin('POST', '/api/v1/tokens', { name: 'vic', roles: ['viewer'] });
    const rule = await admin('POST', '/api/v1/alert-rules', {
      name: 'Pressure present',
      metric: 'pressure',
      above: 0,
      scope: { devices: [DEVICE] },
      severity: 'info',
    });
    expect(rule.status).toBe(201);
    // Session storage is per tab: a second tab signs in on its own.
    const tab = await browser.context.newPage();
    await tab.goto(`${ingest.url}/alerts?state=firing`);
    await tab.getByLabel('API token').fill((viewer.body as { token: string }).token);
    await tab.getByRole('button', { name: 'Sign in' }).click();
    const item = tab.locator('li.alert').filter({ hasText: 'Pressure present' });
    await item.locator('[data-ack-needs-role]').waitFor({ timeout: 20_000 });
    expect(await item.getByRole('button', { name: 'Acknowledge' }).count()).toBe(0);
    expect(await tab.locator('.grants').textContent()).toBe('viewer');
    await tab.close();
  });

  it('shows rollout waves and device states, and pauses, resumes and cancels', async () => {
    const issued = await admin('POST', '/api/v1/tokens', { name: 'fiona', roles: ['firmware'] });
    const fiona = apiClient(ingest.url, (issued.body as { token: string }).token);
    const releaseKey = await generateKeyPair('EdDSA');
    const key = await fiona('POST', '/api/v1/release-keys', {
      publicKey: releaseKey.publicJwk,
      name: 'ci',
    });
    expect(key.status).toBe(201);
    const artifact = randomBytes(4096);
    const manifest = await signManifest(releaseKey.privateJwk, {
      name: 'boiler controller',
      component: 'main',
      version: '1.5.0',
      hardware: ['boiler-v2'],
      size: artifact.length,
      sha256: createHash('sha256').update(artifact).digest('hex'),
      createdAt: Math.floor(Date.now() / 1000),
    });
    const uploaded = await fetch(`${ingest.url}/api/v1/firmware`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${(issued.body as { token: string }).token}`,
        'content-type': 'application/octet-stream',
        'x-outpost-manifest': manifest,
      },
      body: artifact,
    });
    expect(uploaded.status).toBe(201);
    const firmwareId = ((await uploaded.json()) as { id: string }).id;
    const created = await fiona('POST', '/api/v1/rollouts', {
      firmwareId,
      target: { devices: [DEVICE] },
      waves: [100],
      soakSeconds: 0,
    });
    expect(created.status).toBe(201);
    const rolloutId = (created.body as { id: string }).id;

    const tab = await browser.context.newPage();
    await tab.goto(`${ingest.url}/rollouts`);
    await tab.getByLabel('API token').fill((issued.body as { token: string }).token);
    await tab.getByRole('button', { name: 'Sign in' }).click();
    await tab
      .locator(`tr[data-rollout="${rolloutId}"]`)
      .getByRole('link', { name: 'main 1.5.0' })
      .click();
    await tab.getByRole('heading', { name: 'main 1.5.0' }).waitFor();
    const status = tab.locator('[data-rollout-status]');
    await expect.poll(() => status.textContent()).toBe('running');
    await tab.getByText('Wave 1 · up to 100%').waitFor();
    await tab.locator('tr', { hasText: DEVICE }).getByText('offered').waitFor({ timeout: 10_000 });
    await tab.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => status.textContent()).toBe('paused');
    await tab.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => status.textContent()).toBe('running');
    await tab.screenshot({ path: `${ARTIFACTS}08-rollout-running.png`, fullPage: true });
    await tab.getByRole('button', { name: 'Cancel rollout…' }).click();
    await tab.getByRole('button', { name: 'Confirm: cancel rollout' }).click();
    await expect.poll(() => status.textContent()).toBe('cancelled');
    expect(await tab.getByRole('button', { name: 'Pause' }).count()).toBe(0);
    const stored = await admin('GET', `/api/v1/rollouts/${rolloutId}`);
    expect((stored.body as { status: string }).status).toBe('cancelled');

    // A device that never answers its offer fails with a reason, and the rollout aborts:
    // both arrive over the stream while the page is open.
    const second = await fiona('POST', '/api/v1/rollouts', {
      firmwareId,
      target: { devices: [DEVICE] },
      waves: [100],
      soakSeconds: 0,
      minDevices: 1,
      offerTimeoutSeconds: 1,
    });
    expect(second.status).toBe(201);
    await tab.goto(`${ingest.url}/rollouts/${(second.body as { id: string }).id}`);
    await expect.poll(() => status.textContent(), { timeout: 20_000 }).toBe('aborted');
    await tab.locator('tr', { hasText: DEVICE }).getByText('timeout').waitFor();
    expect(await tab.locator('.facts').textContent()).toContain('failure rate');
    await tab.screenshot({ path: `${ARTIFACTS}09-rollout-aborted.png`, fullPage: true });
    await tab.close();
  });

  it('never puts the token in a URL, and sends it on every API call', async () => {
    expect(requested.length).toBeGreaterThan(10);
    for (const url of requested) expect(url).not.toContain(token);
    expect(requested.some((u) => u.includes('/api/v1/stream?'))).toBe(true);
    // Only the public OpenAPI document is read without the token.
    expect(unauthenticatedApi).toEqual([]);
    expect(cspViolations).toEqual([]);
    // Signing out forgets it.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    expect(await page.evaluate(() => JSON.stringify(sessionStorage))).not.toContain(token);
  });
});
