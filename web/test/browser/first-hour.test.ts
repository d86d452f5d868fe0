// A newcomer's first hour: the campaign cards' titles are links that look
// like links, and the sign-in page says what each demo account has.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
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

it('logged no errors in the visitor’s browser', () => {
  expect(visitor.errors).toEqual([]);
});
