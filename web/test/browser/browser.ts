// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { DEMO_PASSWORD, REPO, retryWhileBusy } from '../setup/herald';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(REPO, 'artifacts', 'screenshots');

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export interface UserPage {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions of the page. */
  errors: string[];
}

/**
 * A browser context of its own (its own cookies) with one page, signed in
 * as username through the cookie session when given.
 */
export async function openAs(browser: Browser, base: string, username?: string): Promise<UserPage> {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 860 } });
  if (username) {
    const r = await retryWhileBusy(
      () => context.request.post('/api/auth/session/', { data: { username, password: DEMO_PASSWORD } }),
      (r) => (r.status() === 503 ? (r.headers()['retry-after'] ?? '') : null),
    );
    if (!r.ok()) throw new Error(`session for ${username}: ${r.status()}`);
    await context.addInitScript(() => localStorage.setItem('herald_signed_in', '1'));
  }
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() !== 'error') return;
    const at = m.location().url;
    errors.push(`console: ${m.text()}${at ? ` (${new URL(at).pathname})` : ''}`);
  });
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  return { context, page, errors };
}

/**
 * Makes every WebSocket handshake of the pages of u's context fail, as
 * behind a proxy that breaks upgrades: the app then follows its rooms over
 * Server-Sent Events. Call before the pages load the app.
 */
export async function breakWebSockets(u: UserPage): Promise<void> {
  await u.context.addInitScript(() => {
    const Real = window.WebSocket;
    window.WebSocket = class extends Real {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(String(url).replace('/ws/', '/no-ws/'), protocols);
      }
    };
  });
}

/** Marks the page, so that a reload (which would clear the mark) is seen. */
export const mark = (p: Page) => p.evaluate(() => ((window as unknown as { mark: number }).mark = 1));
/** Whether the page still has its mark: it was not reloaded since mark. */
export const marked = (p: Page) => p.evaluate(() => (window as unknown as { mark?: number }).mark === 1);

/** Saves a full-page screenshot to artifacts/screenshots/<name>.png. */
export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Waits until the page's real-time indicator shows state. */
export async function indicator(page: Page, state: 'open' | 'reconnecting', timeout = 10_000): Promise<void> {
  await page.locator(`[data-testid="realtime-indicator"][data-state="${state}"]`).first().waitFor({ timeout });
}

/** A toast with this text appears within timeout ms. */
export async function toast(page: Page, text: string, timeout = 1000): Promise<void> {
  await page.locator('.toast', { hasText: text }).first().waitFor({ state: 'visible', timeout });
}

/** Errors other than the expected ones of a server that is down. */
export function unexpected(errors: string[], serverWasDown = false): string[] {
  if (!serverWasDown) return errors;
  return errors.filter(
    (e) => !/WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|Failed to load resource|net::ERR_/.test(e),
  );
}
