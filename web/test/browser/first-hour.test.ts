// A newcomer's first hour: the campaign cards' titles are links that look
// like links, the sign-in page says what each demo account has, and signing
// in tells what is going on when the server is slow, busy (503) or silent.
// The overloaded server is simulated by intercepting the sign-in request
// (page.route); the normal path is the real herald's.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page, Route } from 'playwright-core';
import { DEMO_ACCOUNTS } from '../../src/app/demo';
import { Herald } from '../setup/herald';
import { launch, openAs, shot, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let visitor: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  visitor = await openAs(browser, h.url);
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

const SESSION = '**/api/auth/session/';

async function fillSignIn(p: Page, username: string): Promise<void> {
  await p.goto('/signin/');
  await p.getByLabel('Username').fill(username);
  await p.getByLabel('Password').fill('herald-demo');
}

const signInButton = (p: Page) => p.locator('form button[type="submit"]');

it('shows campaign titles as links that open the campaign, by mouse and keyboard', async () => {
  const p = visitor.page;
  await p.goto('/campaigns/');
  const cards = p.getByRole('list', { name: 'Campaigns' });
  const title = cards.getByRole('heading', { name: 'Harbour mural' }).getByRole('link', { name: 'Harbour mural' });
  await title.waitFor();
  expect(await title.getAttribute('href')).toMatch(/^\/campaigns\/\d+\/$/);
  const style = () => title.evaluate((a) => ({ color: getComputedStyle(a).color, line: getComputedStyle(a).textDecorationLine }));
  // Link-coloured (--primary) rather than the body text's colour.
  expect((await style()).color).toBe('rgb(29, 78, 216)');
  expect((await style()).line).toBe('none');
  await title.hover();
  expect((await style()).line).toBe('underline');
  await p.mouse.move(0, 0);

  // Reached with the keyboard, it is underlined too, and Enter opens it.
  await p.locator('body').focus();
  for (let i = 0; i < 40 && !(await title.evaluate((a) => a === document.activeElement)); i++) await p.keyboard.press('Tab');
  expect(await title.evaluate((a) => a === document.activeElement)).toBe(true);
  expect((await style()).line).toBe('underline');
  await shot(p, 'campaign-card-title-focused');
  await p.keyboard.press('Enter');
  await p.getByRole('heading', { name: 'Harbour mural', level: 1 }).waitFor();
  expect(new URL(p.url()).pathname).toMatch(/^\/campaigns\/\d+\/$/);

  await p.goBack();
  await title.click();
  await p.getByRole('heading', { name: 'Harbour mural', level: 1 }).waitFor();
});

it('lists what each demo account owns and applied to on the sign-in page', async () => {
  const p = visitor.page;
  await p.goto('/signin/');
  const items = p.getByTestId('demo-accounts').getByRole('listitem');
  await items.first().waitFor();
  expect(await items.count()).toBe(DEMO_ACCOUNTS.length);
  const text = await items.allTextContents();
  expect(text[0]).toBe(
    'alice — owns campaigns Solar kiosk for the village library, Open-source field notebook app and Community garden tool shed (draft); ' +
      'applied to Translate the library catalogue (approved) and Photograph the harbour wall (withdrawn)',
  );
  expect(text[1]).toContain('bob — owns campaign Harbour mural; created quests Translate the library catalogue and Photograph the harbour wall');
  expect(text[3]).toBe('dave — applied to Translate the library catalogue (rejected) and Test the notebook beta (pending)');
  expect(await p.getByText('herald-demo').count()).toBeGreaterThan(0);
  await shot(p, 'signin');
});

it('lists no demo accounts where the demo data is off', async () => {
  const off = await Herald.start({ bin: inject('heraldBin'), args: ['--demo=false'] });
  try {
    const u = await openAs(browser, off.url);
    const p = u.page;
    const answered = p.waitForResponse((r) => r.url().endsWith('/api/auth/session/') && r.request().method() === 'GET');
    await p.goto('/signin/');
    await p.getByLabel('Username').waitFor();
    expect(((await (await answered).json()) as { demo?: boolean }).demo).toBe(false);
    // A frame after the answer: the page has applied it.
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(null)))));
    expect(await p.getByTestId('demo-accounts').count()).toBe(0);
    expect(await p.getByText('herald-demo').count()).toBe(0);
    await u.context.close();
  } finally {
    await off.dispose();
  }
});

it('signs in against the real server', async () => {
  const u = await openAs(browser, h.url);
  const p = u.page;
  await fillSignIn(p, 'bob');
  await signInButton(p).click();
  await p.getByTestId('signed-in-as').filter({ hasText: 'bob' }).waitFor({ timeout: 15_000 });
  expect(new URL(p.url()).pathname).toBe('/campaigns/');
  // bob created quests: his applicants are there.
  await p.getByRole('navigation').getByRole('link', { name: 'Manage applications' }).click();
  await p.getByText('Translate the library catalogue').first().waitFor();
  expect(u.errors).toEqual([]);
  await u.context.close();
});

it('says it is still signing in when the answer is slow', async () => {
  const u = await openAs(browser, h.url);
  const p = u.page;
  // The sign-in is held until the page has said it is still under way.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  await p.route(SESSION, async (route: Route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    await released;
    await route.fallback();
  });
  await fillSignIn(p, 'carol');
  const t0 = Date.now();
  await signInButton(p).click();
  expect(await signInButton(p).textContent()).toBe('Signing in…');
  expect(await signInButton(p).isDisabled()).toBe(true);
  const still = p.getByRole('status').filter({ hasText: 'Still signing in' });
  await still.waitFor({ timeout: 3000 });
  expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
  expect(await signInButton(p).textContent()).toBe('Signing in…');
  await shot(p, 'signin-slow');
  release();
  await p.getByTestId('signed-in-as').filter({ hasText: 'carol' }).waitFor({ timeout: 15_000 });
  expect(u.errors).toEqual([]);
  await u.context.close();
});

it('says when the server is busy (503), waits its Retry-After, then signs in', async () => {
  const u = await openAs(browser, h.url);
  const p = u.page;
  let refused = 0;
  await p.route(SESSION, async (route: Route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    refused++;
    await route.fulfill({
      status: 503,
      headers: { 'Retry-After': '3' },
      contentType: 'application/problem+json',
      body: JSON.stringify({ status: 503, code: 'busy', detail: 'the server is busy checking other passwords; try again in a moment' }),
    });
  });
  await fillSignIn(p, 'dave');
  await signInButton(p).click();
  const alert = p.getByRole('alert');
  await alert.filter({ hasText: 'The server is busy right now' }).waitFor({ timeout: 5000 });
  expect(await alert.textContent()).toMatch(/Try again in [23] s\./);
  expect(await signInButton(p).textContent()).toMatch(/^Try again in [23] s$/);
  expect(await signInButton(p).isDisabled()).toBe(true);
  expect(await p.getByLabel('Password').isEditable()).toBe(true);
  await shot(p, 'signin-busy');
  // The button comes back once the Retry-After has passed.
  await p.waitForFunction(() => document.querySelector('form button[type="submit"]')?.textContent === 'Sign in', null, { timeout: 5000 });
  expect(await signInButton(p).isEnabled()).toBe(true);
  expect(await alert.textContent()).toContain('You can try again now.');
  expect(refused).toBe(1);

  await p.unroute(SESSION);
  await signInButton(p).click();
  await p.getByTestId('signed-in-as').filter({ hasText: 'dave' }).waitFor({ timeout: 15_000 });
  expect(u.errors.filter((e) => !e.includes('status of 503'))).toEqual([]);
  await u.context.close();
});

it('holds the button back for at most 30 s whatever the Retry-After, counting down to the form', async () => {
  const u = await openAs(browser, h.url);
  const p = u.page;
  await p.clock.install();
  await p.route(SESSION, async (route: Route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    await route.fulfill({
      status: 503,
      headers: { 'Retry-After': '9'.repeat(400) }, // a broken or hostile proxy's
      contentType: 'application/problem+json',
      body: JSON.stringify({ status: 503, code: 'busy', detail: 'the server is busy checking other passwords; try again in a moment' }),
    });
  });
  await fillSignIn(p, 'bob');
  await signInButton(p).click();
  await p.getByRole('alert').filter({ hasText: 'Try again in 30 s.' }).waitFor({ timeout: 5000 });
  // One second at a time, down to the form and no further.
  for (let left = 29; left > 0; left--) {
    await p.clock.runFor(1000);
    await p.waitForFunction((n) => document.querySelector('form button[type="submit"]')?.textContent === `Try again in ${n} s`, left, {
      timeout: 5000,
    });
  }
  await p.clock.runFor(1000);
  await p.waitForFunction(() => document.querySelector('form button[type="submit"]')?.textContent === 'Sign in', null, { timeout: 5000 });
  expect(await signInButton(p).isEnabled()).toBe(true);
  expect(await p.getByRole('alert').textContent()).toContain('You can try again now.');
  await p.clock.runFor(5000);
  expect(await signInButton(p).textContent()).toBe('Sign in');
  expect(u.errors.filter((e) => !e.includes('status of 503'))).toEqual([]);
  await u.context.close();
});

it('gives up on a sign-in that gets no answer in 15 s and can be sent again', async () => {
  const u = await openAs(browser, h.url);
  const p = u.page;
  await p.clock.install();
  const held: Route[] = [];
  await p.route(SESSION, (route: Route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    held.push(route); // never answered
  });
  const aborted: string[] = [];
  p.on('requestfailed', (r) => {
    if (new URL(r.url()).pathname === '/api/auth/session/') aborted.push(r.failure()?.errorText ?? '');
  });
  await fillSignIn(p, 'alice');
  await signInButton(p).click();
  await p.waitForFunction(() => document.querySelector('form')?.getAttribute('aria-busy') === 'true');
  await p.clock.runFor(2500);
  await p.getByRole('status').filter({ hasText: 'Still signing in' }).waitFor({ timeout: 2000 });
  await p.clock.runFor(13_000);
  await p.getByRole('alert').filter({ hasText: 'herald did not answer within 15 s' }).waitFor({ timeout: 5000 });
  expect(await signInButton(p).textContent()).toBe('Sign in');
  expect(await signInButton(p).isEnabled()).toBe(true);
  expect(await p.getByRole('status').textContent()).toBe('');
  expect(held).toHaveLength(1);
  await expect.poll(() => aborted).toEqual(['net::ERR_ABORTED']);
  await shot(p, 'signin-timeout');

  await p.unrouteAll({ behavior: 'ignoreErrors' });
  await signInButton(p).click();
  await p.getByTestId('signed-in-as').filter({ hasText: 'alice' }).waitFor({ timeout: 15_000 });
  expect(u.errors.filter((e) => !e.includes('ERR_ABORTED'))).toEqual([]);
  await u.context.close();
});

it('logged no errors in the visitor’s browser', () => {
  expect(visitor.errors).toEqual([]);
});
