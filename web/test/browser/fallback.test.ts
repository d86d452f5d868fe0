// Where WebSockets cannot connect (a proxy that breaks upgrades), the app
// reads the same endpoints as Server-Sent Events and stays live.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { ApiUser, Herald } from '../setup/herald';
import { indicator, launch, openAs, unexpected, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let carol: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  carol = await openAs(browser, h.url, 'carol');
  // Every WebSocket handshake of the page fails, as behind a proxy that
  // breaks upgrades (the path is a page of the app, not an endpoint).
  await carol.context.addInitScript(() => {
    const Real = window.WebSocket;
    window.WebSocket = class extends Real {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(String(url).replace('/ws/', '/no-ws/'), protocols);
      }
    };
  });
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

it('falls back to Server-Sent Events and stays live', async () => {
  const p = carol.page;
  const stream = p.waitForRequest((r) => new URL(r.url()).pathname === '/sse/campaign/1/', { timeout: 15_000 });
  await p.goto('/campaigns/1/');
  await stream;
  await indicator(p, 'open', 15_000);
  const bob = await ApiUser.signIn(h.url, 'bob');
  await bob.post('/api/campaigns/1/contributions/', { amount: '4.50' });
  await p.waitForFunction(() => document.querySelector('[data-testid="raised"]')?.textContent === '$1,530.00', null, { timeout: 2000 });
  await p.getByTestId('watching').waitFor({ timeout: 5000 });

  const apps = p.waitForRequest((r) => new URL(r.url()).pathname === '/sse/applications/', { timeout: 15_000 });
  await p.getByRole('navigation').getByRole('link', { name: 'My applications' }).click();
  await apps;
  await indicator(p, 'open', 15_000);
  expect(unexpected(carol.errors, true)).toEqual([]);
});
