// Moderation in several browsers at once: a comment reported by one user
// shows in the owner's reported comments; the owner hides it and it
// disappears from every open dashboard; an author deletes their own, which
// disappears the same way, for a viewer on Server-Sent Events too; neither
// comes back on a reload.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Herald } from '../setup/herald';
import { breakWebSockets, indicator, launch, openAs, shot, toast, unexpected, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let alice: UserPage, bob: UserPage, carol: UserPage, visitor: UserPage, sse: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  [alice, bob, carol, visitor, sse] = await Promise.all([
    openAs(browser, h.url, 'alice'),
    openAs(browser, h.url, 'bob'),
    openAs(browser, h.url, 'carol'),
    openAs(browser, h.url),
    openAs(browser, h.url),
  ]);
  // This viewer's dashboard follows the room over SSE.
  await breakWebSockets(sse);
  const stream = sse.page.waitForRequest((r) => new URL(r.url()).pathname === '/sse/campaign/1/', { timeout: 15_000 });
  await Promise.all([alice, bob, carol, visitor, sse].map(async ({ page }) => {
    await page.goto('/campaigns/1/');
    await indicator(page, 'open', 15_000);
  }));
  await stream;
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

const comments = (p: Page) => p.getByTestId('comments');
const commentItem = (p: Page, text: string) => comments(p).getByRole('listitem').filter({ hasText: text });

async function postComment(p: Page, text: string): Promise<void> {
  await p.getByLabel('Add a comment').fill(text);
  await p.getByRole('button', { name: 'Post comment' }).click();
  await commentItem(visitor.page, text).waitFor({ timeout: 1000 });
}

it('a reported comment reaches the owner, who hides it: it disappears live everywhere', async () => {
  const spam = 'Cheap panels at example.biz, hurry!';
  await postComment(bob.page, spam);
  await commentItem(carol.page, spam).waitFor({ timeout: 1000 });
  // Only the author deletes, only the owner hides; others report.
  expect(await commentItem(visitor.page, spam).getByRole('button').count()).toBe(0);
  expect(await commentItem(carol.page, spam).getByRole('button', { name: 'Hide' }).count()).toBe(0);
  expect(await commentItem(carol.page, spam).getByRole('button', { name: 'Delete' }).count()).toBe(0);
  expect(await commentItem(bob.page, spam).getByText('Report', { exact: true }).count()).toBe(0);

  const item = commentItem(carol.page, spam);
  await item.getByText('Report', { exact: true }).click();
  await item.getByLabel('Reason (optional)').fill('Spam');
  await item.getByRole('button', { name: 'Send report' }).click();
  await toast(carol.page, "Reported to the campaign's owner");
  // A second report is refused.
  await item.getByText('Report', { exact: true }).click();
  await item.getByRole('button', { name: 'Send report' }).click();
  await toast(carol.page, 'you have already reported this comment');

  const reported = alice.page.getByRole('region', { name: 'Reported comments' });
  await reported.getByRole('button', { name: 'Refresh' }).click();
  const entry = alice.page.getByTestId('reports').getByRole('listitem').filter({ hasText: spam });
  await entry.waitFor({ timeout: 2000 });
  expect(await entry.textContent()).toContain('Reasons: Spam');
  expect(await entry.textContent()).toContain('reported 1 time');
  await shot(alice.page, 'campaign-reported-comments');
  expect(await carol.page.getByRole('region', { name: 'Reported comments' }).count()).toBe(0);

  const count = await visitor.page.getByRole('region', { name: 'Comments' }).getByRole('heading').textContent();
  await entry.getByRole('button', { name: 'Hide' }).click();
  const t0 = Date.now();
  await Promise.all(
    [visitor, carol, bob, sse].map(({ page }) => commentItem(page, spam).waitFor({ state: 'detached', timeout: 1000 })),
  );
  expect(Date.now() - t0).toBeLessThan(1000);
  await toast(alice.page, 'Comment hidden');
  await entry.waitFor({ state: 'detached', timeout: 2000 });
  await commentItem(alice.page, spam).waitFor({ state: 'detached', timeout: 1000 });
  const after = await visitor.page.getByRole('region', { name: 'Comments' }).getByRole('heading').textContent();
  expect(Number(/\d+/.exec(after ?? '')?.[0])).toBe(Number(/\d+/.exec(count ?? '')?.[0]) - 1);
});

it('an author deletes their own comment: it disappears live everywhere', async () => {
  const oops = 'Oops, wrong campaign';
  await postComment(bob.page, oops);
  await Promise.all([alice, sse].map(({ page }) => commentItem(page, oops).waitFor({ timeout: 1000 })));
  // The owner hides others' comments but does not delete them.
  expect(await commentItem(alice.page, oops).getByRole('button', { name: 'Delete' }).count()).toBe(0);
  await commentItem(bob.page, oops).getByRole('button', { name: 'Delete' }).click();
  await Promise.all(
    [visitor, carol, alice, sse].map(({ page }) => commentItem(page, oops).waitFor({ state: 'detached', timeout: 1000 })),
  );
  await toast(bob.page, 'Comment deleted');
});

it('removed comments do not come back on a reload', async () => {
  await visitor.page.reload();
  await indicator(visitor.page, 'open');
  await comments(visitor.page).getByRole('listitem').first().waitFor();
  const text = await comments(visitor.page).textContent();
  expect(text).not.toContain('example.biz');
  expect(text).not.toContain('Oops, wrong campaign');
});

it('logged no errors in any browser', () => {
  // The refused second report is the one failed request carol's browser reports.
  expect(carol.errors.filter((e) => !e.includes('/report/'))).toEqual([]);
  expect(alice.errors).toEqual([]);
  expect(bob.errors).toEqual([]);
  expect(visitor.errors).toEqual([]);
  expect(unexpected(sse.errors, true)).toEqual([]);
});
