// The campaign itself is live: its owner edits the title, goal and status
// on the dashboard and every open page shows it without a reload, over
// WebSocket and over Server-Sent Events; made a draft again, it leaves
// every page but the owner's.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { CampaignDetail } from '@herald/client';
import { ApiUser, Herald } from '../setup/herald';
import { breakWebSockets, indicator, launch, mark, marked, openAs, shot, toast, unexpected, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let alice: UserPage, carol: UserPage, visitor: UserPage, streamed: UserPage;
let id: number;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  [alice, carol, visitor, streamed] = await Promise.all([
    openAs(browser, h.url, 'alice'),
    openAs(browser, h.url, 'carol'),
    openAs(browser, h.url),
    openAs(browser, h.url),
  ]);
  // This visitor's page reads the room as Server-Sent Events.
  await breakWebSockets(streamed);
  const owner = await ApiUser.signIn(h.url, 'alice');
  id = (await owner.post<CampaignDetail>('/api/campaigns/', { title: 'Reading corner', goal_amount: '500.00', status: 'active' })).id;
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

const viewers = () => [carol.page, visitor.page, streamed.page];

async function edit(fields: { title?: string; goal?: string; status?: string }, screenshot?: string) {
  const a = alice.page;
  await a.getByText('Edit campaign').click();
  const form = a.getByRole('form', { name: 'Edit campaign' });
  if (fields.title !== undefined) await form.getByLabel('Title').fill(fields.title);
  if (fields.goal !== undefined) await form.getByLabel('Goal (USD)').fill(fields.goal);
  if (fields.status !== undefined) await form.getByLabel('Status').selectOption(fields.status);
  if (screenshot) await shot(a, screenshot);
  await form.getByRole('button', { name: 'Save' }).click();
  await form.waitFor({ state: 'hidden' });
}

it('shows the owner’s edit of the title and goal on every open page within a second', async () => {
  const sse = streamed.page.waitForRequest((r) => new URL(r.url()).pathname === `/sse/campaign/${id}/`, { timeout: 15_000 });
  await Promise.all([alice.page, ...viewers()].map((p) => p.goto(`/campaigns/${id}/`)));
  await sse;
  await Promise.all([alice.page, ...viewers()].map((p) => indicator(p, 'open', 15_000)));
  await Promise.all([alice.page, ...viewers()].map(mark));

  await edit({ title: 'Reading corner for the school', goal: '750.00' }, 'campaign-edit-owner');
  const t0 = Date.now();
  for (const p of viewers()) {
    await p.getByRole('heading', { level: 1, name: 'Reading corner for the school' }).waitFor({ timeout: 1000 });
    await p.getByText('raised of $750.00 goal').waitFor({ timeout: 1000 });
  }
  expect(Date.now() - t0).toBeLessThan(1000);
  await toast(visitor.page, 'The campaign was updated.');
  await alice.page.getByRole('heading', { level: 1, name: 'Reading corner for the school' }).waitFor();
  for (const p of [alice.page, ...viewers()]) expect(await marked(p)).toBe(true);
  await shot(visitor.page, 'campaign-edited-live');
});

it('closes the campaign on every page: no more contributions', async () => {
  await carol.page.getByRole('button', { name: 'Contribute' }).waitFor();
  await edit({ status: 'closed' });
  for (const p of viewers()) {
    await p.getByText('This campaign is closed; it takes no contributions.').waitFor({ timeout: 1000 });
    expect(await p.locator('.badge').first().textContent()).toBe('closed');
  }
  expect(await carol.page.getByRole('button', { name: 'Contribute' }).count()).toBe(0);
});

it('a campaign made a draft again leaves every page but its owner’s', async () => {
  await edit({ status: 'draft' });
  for (const p of viewers()) {
    await p.getByRole('heading', { level: 1, name: 'Campaign not found' }).waitFor({ timeout: 2000 });
    expect(await marked(p)).toBe(true); // closed by the server, not reloaded
  }
  await shot(carol.page, 'campaign-made-draft-viewer');
  // The owner keeps their draft: the page reconnects to it.
  const a = alice.page;
  await a.locator('.badge', { hasText: 'draft' }).waitFor({ timeout: 2000 });
  await indicator(a, 'open');
  await a.getByRole('heading', { level: 1, name: 'Reading corner for the school' }).waitFor();
  expect(await marked(a)).toBe(true);
  // Nobody else sees the draft after a reload either.
  await visitor.page.reload();
  await visitor.page.getByRole('heading', { level: 1, name: 'Campaign not found' }).waitFor();
});

it('logged no errors in any browser', () => {
  expect(alice.errors).toEqual([]);
  expect(carol.errors).toEqual([]);
  // The reload asked the REST API for a draft: 404.
  expect(visitor.errors.filter((e) => !e.includes(`(/api/campaigns/${id}/)`))).toEqual([]);
  expect(unexpected(streamed.errors, true)).toEqual([]);
});
