// Expired access tokens: the page renews its session cookie for REST calls
// and before reconnecting its sockets, and stays live. (The access cookie
// lives as long as its token, so an expired token is a missing cookie; the
// test removes it rather than waiting out herald's shortest lifetime.)
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { Application, Quest } from '@herald/client';
import { ApiUser, Herald } from '../setup/herald';
import { indicator, launch, openAs, toast, unexpected, type UserPage } from './browser';

const QUEST = 'Test the notebook beta'; // carol's; dave's application to it is pending

let h: Herald;
let browser: Browser;
let dave: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  dave = await openAs(browser, h.url, 'dave');
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

it('renews an expired session for REST and for reconnecting', async () => {
  const p = dave.page;
  const renewals: number[] = [];
  let attempts = 0; // real-time connection attempts (WebSocket, or SSE fallback)
  p.on('websocket', () => attempts++);
  p.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith('/sse/')) attempts++;
  });
  p.on('response', (r) => {
    if (new URL(r.url()).pathname === '/api/auth/session/refresh/' && r.ok()) renewals.push(Date.now());
  });
  await p.goto('/applications/');
  await indicator(p, 'open');
  await dave.context.clearCookies({ name: 'herald_access' });

  // REST: the request is refused, the session renewed, the request repeated.
  await p.getByRole('navigation').getByRole('link', { name: 'Quests' }).click();
  await p.getByRole('link', { name: QUEST }).click();
  await p.getByTestId('my-application').waitFor({ timeout: 5000 });
  expect(renewals).toHaveLength(1);

  await p.getByRole('navigation').getByRole('link', { name: 'My applications' }).click();
  await indicator(p, 'open');
  await dave.context.clearCookies({ name: 'herald_access' });
  const attemptsBefore = attempts;
  // A restart while the access cookie has expired: the first handshake is
  // refused (no credentials), the session is renewed, the next one succeeds.
  await h.stop();
  await indicator(p, 'reconnecting');
  await h.start();
  await indicator(p, 'open', 40_000);
  // Renewed at least once more (more when the draining server, or the new
  // one, answered a renewal before a handshake that then failed), and never
  // in a loop: at most one renewal per connection attempt since the cookie
  // was cleared.
  expect(renewals.length).toBeGreaterThanOrEqual(2);
  expect(renewals.length - 1).toBeLessThanOrEqual(attempts - attemptsBefore);

  const carol = await ApiUser.signIn(h.url, 'carol');
  const q = (await carol.get<{ results: Quest[] }>(`/api/quests/?creator=${carol.id}`)).results.find((x) => x.title === QUEST)!;
  const app = (await carol.get<{ results: Application[] }>(`/api/quests/${q.id}/applications/`)).results.find(
    (a) => a.applicant.username === 'dave',
  )!;
  await carol.patch(`/api/applications/${app.id}/`, { status: 'rejected' });
  await toast(p, `Your application for ${QUEST} was rejected`, 2000);
  expect(unexpected(dave.errors, true)).toEqual([]);
});
