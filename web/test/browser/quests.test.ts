// Two users in two browsers: the applicant applies, the creator is told at
// once; the creator approves, the applicant sees it at once.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Herald } from '../setup/herald';
import { indicator, launch, openAs, shot, toast, type UserPage } from './browser';

const QUEST = 'Photograph the harbour wall'; // bob's, in the demo data; dave has not applied

let h: Herald;
let browser: Browser;
let bob: UserPage, dave: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  bob = await openAs(browser, h.url, 'bob');
  dave = await openAs(browser, h.url); // signs in through the page
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

it('signs in through the form', async () => {
  const p = dave.page;
  await p.goto('/signin/?next=/quests/');
  await shot(p, 'signin');
  await p.getByLabel('Username').fill('dave');
  await p.getByLabel('Password').fill('wrong-password');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByRole('alert').waitFor({ timeout: 5000 });
  // The refused sign-in is the one failed request the browser reports.
  expect(dave.errors).toEqual(['console: Failed to load resource: the server responded with a status of 401 (Unauthorized) (/api/auth/session/)']);
  dave.errors.length = 0;
  await p.getByLabel('Password').fill('herald-demo');
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByTestId('signed-in-as').waitFor({ timeout: 5000 });
  expect(await p.getByTestId('signed-in-as').textContent()).toContain('dave');
  await p.getByRole('heading', { name: 'Quests' }).waitFor();
  expect(new URL(p.url()).pathname).toBe('/quests/');
  await shot(p, 'quests');
});

it('a new application reaches the creator live: toast and row within a second', async () => {
  await bob.page.goto('/manage/');
  await indicator(bob.page, 'open');
  await bob.page.locator('tbody tr').first().waitFor();
  const rowsBefore = await bob.page.locator('tbody tr').count();

  const p = dave.page;
  await p.getByRole('link', { name: QUEST }).click();
  await p.getByRole('heading', { name: QUEST }).waitFor();
  await p.getByLabel(/Why you/).fill('I have a drone licence and a good camera.');
  await shot(p, 'quest');
  const applied = p.waitForResponse((r) => r.url().includes('/applications/') && r.request().method() === 'POST');
  await p.getByRole('button', { name: 'Apply' }).click();
  expect((await applied).status()).toBe(201);
  const t0 = Date.now();

  await toast(bob.page, `New application from dave for ${QUEST}`, 1000);
  const row = bob.page.locator('tbody tr', { hasText: 'dave' }).filter({ hasText: QUEST });
  await row.waitFor({ timeout: Math.max(1, 1000 - (Date.now() - t0)) });
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(await bob.page.locator('tbody tr').count()).toBe(rowsBefore + 1);
  expect(await row.locator('.badge').textContent()).toBe('pending');
  await p.getByTestId('my-application').waitFor();
  await shot(bob.page, 'manage-applications');
});

it('the creator approves and the applicant sees the status change live', async () => {
  const p = dave.page;
  await p.getByRole('navigation').getByRole('link', { name: 'My applications' }).click();
  await indicator(p, 'open');
  const mine = p.locator('[data-testid="my-applications"] li', { hasText: QUEST });
  expect(await mine.locator('.badge').textContent()).toBe('pending');

  await bob.page.getByRole('button', { name: `Approve dave's application to ${QUEST}` }).click();
  const t0 = Date.now();
  await mine.locator('.badge', { hasText: 'approved' }).waitFor({ timeout: 1000 });
  await toast(p, `Your application for ${QUEST} was approved`, Math.max(1, 1000 - (Date.now() - t0)));
  expect(Date.now() - t0).toBeLessThan(1000);
  await bob.page.locator('tbody tr', { hasText: 'dave' }).filter({ hasText: QUEST }).locator('.badge', { hasText: 'approved' }).waitFor();
  await shot(p, 'my-applications');
});

it('logged no errors in either browser', () => {
  expect(bob.errors).toEqual([]);
  expect(dave.errors).toEqual([]);
});
