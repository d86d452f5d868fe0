// The owner deletes a campaign from its dashboard, after confirming, and
// lands on the campaign list; every other page open on it, over WebSocket
// and over Server-Sent Events, the owner's other tab too, shows the
// campaign is gone without a reload. A campaign with contributions cannot
// be deleted: the owner is told to close it instead.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { CampaignDetail } from '@herald/client';
import { ApiUser, Herald } from '../setup/herald';
import { breakWebSockets, indicator, launch, mark, marked, openAs, shot, toast, unexpected, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let alice: UserPage, carol: UserPage, visitor: UserPage, streamed: UserPage;
let aliceTab: Page;
let id: number, funded: number;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  [alice, carol, visitor, streamed] = await Promise.all([
    openAs(browser, h.url, 'alice'),
    openAs(browser, h.url, 'carol'),
    openAs(browser, h.url),
    openAs(browser, h.url),
  ]);
  aliceTab = await alice.context.newPage();
  // This visitor's page reads the room as Server-Sent Events.
  await breakWebSockets(streamed);
  const [owner, fan] = await Promise.all([ApiUser.signIn(h.url, 'alice'), ApiUser.signIn(h.url, 'carol')]);
  const campaign = (title: string) => owner.post<CampaignDetail>('/api/campaigns/', { title, goal_amount: '300.00', status: 'active' });
  funded = (await campaign('Bike racks')).id;
  await fan.post(`/api/campaigns/${funded}/contributions/`, { amount: '20.00' });
  id = (await campaign('Garden shed')).id;
  await owner.post(`/api/campaigns/${id}/updates/`, { title: 'Plans drawn', content: 'Two doors, one window.' });
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

const viewers = () => [aliceTab, carol.page, visitor.page, streamed.page];

it('the owner deletes the campaign after confirming; every open page shows it is gone', async () => {
  const sse = streamed.page.waitForRequest((r) => new URL(r.url()).pathname === `/sse/campaign/${id}/`, { timeout: 15_000 });
  await Promise.all([alice.page, ...viewers()].map((p) => p.goto(`/campaigns/${id}/`)));
  await sse;
  await Promise.all([alice.page, ...viewers()].map((p) => indicator(p, 'open', 15_000)));
  await Promise.all(viewers().map(mark));

  const a = alice.page;
  await a.getByText('Delete campaign').click();
  const form = a.getByRole('form', { name: 'Delete campaign' });
  await form.getByText('Delete “Garden shed” for good?').waitFor();
  await shot(a, 'campaign-delete-confirm');
  // Nothing happens until the owner confirms.
  expect(await carol.page.getByRole('heading', { level: 1, name: 'Garden shed' }).count()).toBe(1);
  await form.getByRole('button', { name: 'Delete for good' }).click();

  const t0 = Date.now();
  for (const p of viewers()) {
    await p.getByRole('heading', { level: 1, name: 'Campaign not found' }).waitFor({ timeout: 2000 });
    expect(await marked(p)).toBe(true); // closed by the server, not reloaded
  }
  expect(Date.now() - t0).toBeLessThan(2000);
  await shot(carol.page, 'campaign-deleted-viewer');

  // The owner is on the campaign list, where it is no more.
  await a.waitForURL(`${h.url}/campaigns/`);
  await toast(a, 'The campaign was deleted.');
  await a.getByRole('link', { name: 'Bike racks' }).waitFor();
  expect(await a.getByRole('link', { name: 'Garden shed' }).count()).toBe(0);
  // Nobody finds it after a reload either.
  await visitor.page.reload();
  await visitor.page.getByRole('heading', { level: 1, name: 'Campaign not found' }).waitFor();
});

it('a campaign with contributions cannot be deleted: its owner is told to close it', async () => {
  const a = alice.page;
  await a.goto(`/campaigns/${funded}/`);
  await a.getByText('Delete campaign').click();
  const form = a.getByRole('form', { name: 'Delete campaign' });
  await form.getByText('It has contributions, so it cannot be deleted').waitFor();
  expect(await form.getByRole('button', { name: 'Delete for good' }).count()).toBe(0);
  // Only the owner is offered deletion.
  await carol.page.goto(`/campaigns/${funded}/`);
  await carol.page.getByRole('heading', { level: 1, name: 'Bike racks' }).waitFor();
  expect(await carol.page.getByText('Delete campaign').count()).toBe(0);
});

it('logged no errors in any browser', () => {
  expect(alice.errors).toEqual([]);
  expect(carol.errors).toEqual([]);
  // The reload asked the REST API for the deleted campaign: 404.
  expect(visitor.errors.filter((e) => !e.includes(`(/api/campaigns/${id}/)`))).toEqual([]);
  expect(unexpected(streamed.errors, true)).toEqual([]);
});
