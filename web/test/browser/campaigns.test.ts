// The campaign dashboard in several browsers at once: contributions,
// comments and the owner's posts appear everywhere live; sign up; toasts.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Herald } from '../setup/herald';
import { indicator, launch, openAs, shot, toast, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let alice: UserPage, carol: UserPage, visitor: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  [alice, carol, visitor] = await Promise.all([openAs(browser, h.url, 'alice'), openAs(browser, h.url, 'carol'), openAs(browser, h.url)]);
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

const raised = (p: Page) => p.getByTestId('raised').textContent();

it('lists the campaigns and opens a dashboard', async () => {
  const p = visitor.page;
  await p.goto('/');
  await p.getByRole('heading', { name: 'Campaigns' }).waitFor();
  expect(new URL(p.url()).pathname).toBe('/campaigns/');
  // The list loads after the heading renders: wait for it, then count.
  const items = p.getByRole('list', { name: 'Campaigns' }).getByRole('listitem');
  await items.first().waitFor();
  expect(await items.count()).toBe(3); // the draft is alice's alone
  await shot(p, 'campaigns');
  await p.getByRole('link', { name: 'Solar kiosk for the village library' }).click();
  await indicator(p, 'open');
  await p.getByTestId('watching').waitFor({ timeout: 5000 });
  expect(await raised(p)).toBe('$1,525.50');
});

it('a contribution in one browser updates the raised total in the others within a second', async () => {
  await carol.page.goto('/campaigns/1/');
  await alice.page.goto('/campaigns/1/');
  await Promise.all([indicator(carol.page, 'open'), indicator(alice.page, 'open')]);
  // Three people in the room.
  await visitor.page.getByTestId('watching').filter({ hasText: '3 watching' }).waitFor({ timeout: 5000 });

  await carol.page.getByLabel('Amount (USD)').fill('24.50');
  await carol.page.getByRole('button', { name: 'Contribute' }).click();
  const t0 = Date.now();
  await visitor.page.waitForFunction(() => document.querySelector('[data-testid="raised"]')?.textContent === '$1,550.00', null, {
    timeout: 1000,
  });
  expect(Date.now() - t0).toBeLessThan(1000);
  await toast(visitor.page, 'New contribution received!');
  expect(await raised(alice.page)).toBe('$1,550.00');
  expect(await raised(carol.page)).toBe('$1,550.00'); // once, though carol saw both her answer and the event
  expect(await visitor.page.getByTestId('contributions-count').textContent()).toBe('4 contributions');
  expect(await visitor.page.getByTestId('contributions').getByRole('listitem').first().textContent()).toContain('$24.50 from carol');
  await shot(visitor.page, 'campaign-dashboard');
  await visitor.page.setViewportSize({ width: 390, height: 844 });
  await shot(visitor.page, 'campaign-dashboard-phone');
  await visitor.page.setViewportSize({ width: 1280, height: 860 });
});

it('comments and the owner’s updates, releases and milestones appear live', async () => {
  await carol.page.getByLabel('Add a comment').fill('Count me in for opening day!');
  await carol.page.getByRole('button', { name: 'Post comment' }).click();
  await visitor.page.getByTestId('comments').getByText('Count me in for opening day!').waitFor({ timeout: 1000 });

  const a = alice.page;
  const updates = a.getByRole('region', { name: 'Updates' });
  await updates.getByText('Post an update').click();
  await updates.getByLabel('Title').fill('Panels delivered');
  await updates.getByLabel('Content').fill('All twelve panels arrived today.');
  await updates.getByRole('button', { name: 'Post update' }).click();
  await visitor.page.getByTestId('updates').getByText('Panels delivered').waitFor({ timeout: 1000 });

  const releases = a.getByRole('region', { name: 'Releases' });
  await releases.getByText('Publish a release').click();
  await releases.getByLabel('Version').fill('0.2');
  await releases.getByLabel('Title').fill('Installation guide');
  await releases.getByRole('button', { name: 'Publish' }).click();
  await visitor.page.getByTestId('releases').getByText('Installation guide').waitFor({ timeout: 1000 });

  const milestones = a.getByRole('region', { name: 'Milestones' });
  await milestones.getByText('Add a milestone').click();
  await milestones.getByLabel('Title').fill('Second kiosk');
  await milestones.getByLabel('Target (USD)').fill('9000.00');
  await milestones.getByRole('button', { name: 'Add milestone' }).click();
  await carol.page.getByTestId('milestones').getByText('Second kiosk').waitFor({ timeout: 1000 });
  await shot(a, 'campaign-dashboard-owner');
  // The visitor's form-free view has no owner controls.
  expect(await visitor.page.getByText('Post an update').count()).toBe(0);
});

it('toasts dismiss themselves after six seconds', async () => {
  const t = visitor.page.locator('.toast').first();
  await t.waitFor();
  await visitor.page.locator('.toast').first().waitFor({ state: 'detached', timeout: 8000 });
});

it('signs up a new account and signs out', async () => {
  const p = visitor.page;
  await p.getByRole('link', { name: 'Sign up' }).click();
  await p.getByRole('heading', { name: 'Create an account' }).waitFor();
  await p.getByLabel('Username').fill('erin');
  await p.getByLabel('Password').fill('12345678');
  await p.getByRole('button', { name: 'Create account' }).click();
  await p.getByText('password must not consist of digits only').waitFor();
  await shot(p, 'signup');
  await p.getByLabel('Password').fill('erin-likes-solar');
  await p.getByRole('button', { name: 'Create account' }).click();
  await p.getByTestId('signed-in-as').filter({ hasText: 'erin' }).waitFor();
  await p.getByRole('button', { name: 'Sign out' }).click();
  await p.getByRole('link', { name: 'Sign in' }).waitFor();
  // The refused registration is the one failed request the browser reports.
  expect(visitor.errors.filter((e) => !e.includes('(/api/auth/register/)'))).toEqual([]);
  visitor.errors.length = 0;
});

it('logged no errors in any browser', () => {
  expect(alice.errors).toEqual([]);
  expect(carol.errors).toEqual([]);
  expect(visitor.errors).toEqual([]);
});
