// herald goes away and comes back: the pages say so, reconnect by
// themselves and show what happened meanwhile.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { Application, Quest } from '@herald/client';
import { ApiUser, Herald } from '../setup/herald';
import { indicator, launch, openAs, shot, unexpected, type UserPage } from './browser';

const QUEST = 'Test the notebook beta'; // carol's; dave's application to it is pending in the demo data

let h: Herald;
let browser: Browser;
let dave: UserPage, watcher: UserPage, visitor: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  [dave, watcher, visitor] = await Promise.all([openAs(browser, h.url, 'dave'), openAs(browser, h.url, 'carol'), openAs(browser, h.url)]);
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

it('reconnects after a restart and shows what happened while it was away', async () => {
  const renewals: string[] = [];
  visitor.page.on('request', (r) => {
    if (r.url().includes('/api/auth/session/refresh/')) renewals.push(r.url());
  });
  await dave.page.goto('/applications/');
  await watcher.page.goto('/campaigns/1/');
  await visitor.page.goto('/campaigns/1/');
  await Promise.all([indicator(dave.page, 'open'), indicator(watcher.page, 'open'), indicator(visitor.page, 'open')]);
  const mine = dave.page.locator('[data-testid="my-applications"] li', { hasText: QUEST });
  expect(await mine.locator('.badge').textContent()).toBe('pending');
  expect(await watcher.page.getByTestId('raised').textContent()).toBe('$1,525.50');

  await h.stop();
  await Promise.all([indicator(dave.page, 'reconnecting'), indicator(watcher.page, 'reconnecting')]);
  await watcher.page.getByTestId('realtime-warning').waitFor();
  expect(await watcher.page.getByTestId('realtime-warning').textContent()).toContain(
    'Real-time updates are currently unavailable. Please refresh the page to see the latest updates.',
  );
  await shot(watcher.page, 'campaign-dashboard-disconnected');

  // While the pages are cut off, things change (through another herald on
  // the same database, whose events the pages never see).
  const other = await Herald.start({ bin: h.bin, dir: h.dir });
  try {
    const [carol, bob] = await Promise.all([ApiUser.signIn(other.url, 'carol'), ApiUser.signIn(other.url, 'bob')]);
    const quests = await carol.get<{ results: Quest[] }>(`/api/quests/?creator=${carol.id}`);
    const q = quests.results.find((x) => x.title === QUEST)!;
    const apps = await carol.get<{ results: Application[] }>(`/api/quests/${q.id}/applications/`);
    const app = apps.results.find((a) => a.applicant.username === 'dave')!;
    await carol.patch(`/api/applications/${app.id}/`, { status: 'approved' });
    await bob.post('/api/campaigns/1/contributions/', { amount: '77.00' });
  } finally {
    await other.stop();
  }

  const back = Date.now();
  await h.start();
  await Promise.all([indicator(dave.page, 'open', 40_000), indicator(watcher.page, 'open', 40_000), indicator(visitor.page, 'open', 40_000)]);
  console.log(`pages reconnected ${((Date.now() - back) / 1000).toFixed(1)} s after herald came back`);
  await mine.locator('.badge', { hasText: 'approved' }).waitFor({ timeout: 5000 });
  await watcher.page.waitForFunction(() => document.querySelector('[data-testid="raised"]')?.textContent === '$1,602.50', null, {
    timeout: 5000,
  });
  expect(await watcher.page.getByTestId('realtime-warning').count()).toBe(0);
  await visitor.page.waitForFunction(() => document.querySelector('[data-testid="raised"]')?.textContent === '$1,602.50', null, {
    timeout: 5000,
  });
  expect(renewals).toEqual([]); // a visitor who never signed in has no session to renew
  await shot(dave.page, 'my-applications-after-reconnect');

  // And live again.
  const bob = await ApiUser.signIn(h.url, 'bob');
  await bob.post('/api/campaigns/1/contributions/', { amount: '2.50' });
  await watcher.page.waitForFunction(() => document.querySelector('[data-testid="raised"]')?.textContent === '$1,605.00', null, {
    timeout: 2000,
  });
});

it('logged no errors but the refused connections while herald was down', () => {
  expect(unexpected(dave.errors, true)).toEqual([]);
  expect(unexpected(watcher.errors, true)).toEqual([]);
  expect(unexpected(visitor.errors, true)).toEqual([]);
});
