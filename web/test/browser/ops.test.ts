// The operations page: an administrator (--admins alice) finds it in the
// menu and watches the connection count rise as another browser opens a
// campaign, and the charts draw; a signed-in user who is not an
// administrator has no such menu entry, and is told so at its address.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Herald } from '../setup/herald';
import { indicator, launch, openAs, shot, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let alice: UserPage, bob: UserPage, carol: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin'), args: ['--admins', 'alice'] }), launch()]);
  [alice, bob, carol] = await Promise.all([openAs(browser, h.url, 'alice'), openAs(browser, h.url, 'bob'), openAs(browser, h.url, 'carol')]);
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

it('shows Operations in the menu to administrators only', async () => {
  const nav = (u: UserPage) => u.page.getByRole('navigation', { name: 'Main' });
  await Promise.all([alice.page.goto('/campaigns/'), bob.page.goto('/campaigns/')]);
  // Both signed in: the menu has their entries.
  await Promise.all([alice, bob].map((u) => nav(u).getByRole('link', { name: 'My applications' }).waitFor()));
  expect(await nav(alice).getByRole('link', { name: 'Operations' }).count()).toBe(1);
  expect(await nav(bob).getByRole('link', { name: 'Operations' }).count()).toBe(0);
  await shot(bob.page, 'menu-not-administrator');
});

it('shows an administrator the connections rising and charts them', async () => {
  const p = alice.page;
  await p.goto('/campaigns/');
  await p.getByRole('navigation').getByRole('link', { name: 'Operations' }).click();
  await p.getByRole('heading', { name: 'Operations', level: 1 }).waitFor();
  await p.getByTestId('ops-websocket').waitFor({ timeout: 5000 });
  // The running build, as /api/ops/ reports it.
  const ops = (await (await p.request.get('/api/ops/')).json()) as { version: { version: string } };
  expect(await p.getByTestId('ops-version').textContent()).toContain(ops.version.version);

  await carol.page.goto('/campaigns/1/');
  await indicator(carol.page, 'open');
  await p.waitForFunction(() => Number(document.querySelector('[data-testid="ops-websocket"]')?.textContent) >= 1, null, {
    timeout: 5000,
  });
  const connections = p.getByRole('img', { name: /^Connections/ });
  await connections.waitFor();
  // A line per series once there are samples; the rates need two.
  await p.waitForFunction(() => document.querySelectorAll('[data-testid="ops-chart"] path.line').length === 4, null, {
    timeout: 5000,
  });
  expect(await connections.locator('desc').textContent()).toMatch(/Latest: WebSocket [1-9]/);
  expect(await p.getByRole('img', { name: /^Events per second/ }).count()).toBe(1);
  for (const name of ['Slow consumers', 'Dropped', 'Rate limited', 'Handshakes refused', 'Groups', 'Outbox pending']) {
    expect(await p.getByText(name, { exact: true }).count()).toBe(1);
  }
  await shot(p, 'operations');
});

it('tells a signed-in user who is not an administrator', async () => {
  const p = bob.page;
  await p.goto('/ops/');
  await p.getByText('The operations page is for administrators').waitFor({ timeout: 5000 });
  expect(await p.getByRole('img').count()).toBe(0);
  await shot(p, 'operations-forbidden');
  // The refused request is the one failed request the browser reports.
  expect(bob.errors.filter((e) => !e.includes('(/api/ops/)'))).toEqual([]);
  bob.errors.length = 0;
});

it('stops polling when the page is left', async () => {
  const p = alice.page;
  let polls = 0;
  p.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/ops/') polls++;
  });
  await p.getByRole('navigation').getByRole('link', { name: 'Quests' }).click();
  await p.getByRole('heading', { name: 'Quests', level: 1 }).waitFor();
  const after = polls;
  await p.waitForTimeout(2500);
  expect(polls - after).toBeLessThanOrEqual(1); // at most one already under way
});

it('logged no errors in any browser', () => {
  expect(alice.errors).toEqual([]);
  expect(bob.errors).toEqual([]);
  expect(carol.errors).toEqual([]);
});
