// A newcomer's first hour: the campaign cards' titles are links that look
// like links.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
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

it('logged no errors in the visitor’s browser', () => {
  expect(visitor.errors).toEqual([]);
});
