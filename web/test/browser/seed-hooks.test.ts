// The seeds' own hooks (copied verbatim into test/fixtures/seed/), bundled
// into a page served from an origin of its own (test/browser/seed-page.ts),
// receive herald's events.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { Application, Quest } from '@herald/client';
import { ApiUser, Herald } from '../setup/herald';
import { launch, openAs, shot, type UserPage } from './browser';
import { FIXTURE, SEEDS, SeedSite, bundleSeedPage } from './seed-page';

let h: Herald;
let browser: Browser;
let page: UserPage;
let carol: ApiUser;
let site: SeedSite | null = null;

/** The fenced code block that follows heading in a seed document. */
function seedBlock(file: string, heading: string, lang: string): string {
  const s = readFileSync(join(SEEDS, file), 'utf8');
  const start = s.indexOf('```' + lang + '\n', s.indexOf(heading)) + lang.length + 4;
  return s.slice(start, s.indexOf('```', start));
}

beforeAll(async () => {
  // Both ports are the system's pick, so a herald or a dev server already
  // on the seeds' 8000 and 3000 does not matter. herald allows the page's
  // origin, and the seeds' "ws://localhost:8000" is rewritten to it.
  site = await SeedSite.start('seed hooks');
  const args = ['--allowed-origins', site.origin];
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin'), args }), launch()]);
  site.script = await bundleSeedPage('harness.tsx', h.port);
  carol = await ApiUser.signIn(h.url, 'carol');
  page = await openAs(browser, site.origin);
  // The seeds keep the access token in localStorage.
  await page.context.addInitScript((token) => localStorage.setItem('access_token', token), carol.access);
});
afterAll(async () => {
  site?.close();
  await browser?.close();
  await h?.dispose();
});

it('uses the seeds’ hooks verbatim', () => {
  if (!existsSync(SEEDS)) return; // shared/ is not beside this checkout
  expect(readFileSync(join(FIXTURE, 'useApplicationWebSocket.ts'), 'utf8')).toBe(seedBlock('000_416cc4bbf49c69c7.txt', '### 1. WebSocket Hook', 'typescript'));
  expect(readFileSync(join(FIXTURE, 'useWebSocket.js'), 'utf8')).toBe(seedBlock('001_0713ea022d613810.txt', '### WebSocket Hook', 'javascript'));
});

const seen = (p: Page) => p.evaluate(() => (window as unknown as { seed: { apps: unknown[]; room: unknown[] } }).seed);

it('receive herald’s events', async () => {
  const p = page.page;
  await p.goto('/');
  await p.waitForFunction(() => {
    const s = (window as unknown as { seed?: { appsConnected: boolean; roomConnected: boolean } }).seed;
    return s?.appsConnected && s.roomConnected;
  }, null, { timeout: 10_000 });
  await p.waitForFunction(() => (window as unknown as { seed: { room: unknown[] } }).seed.room.length >= 1, null, { timeout: 5000 });
  expect((await seen(p)).room[0]).toMatchObject({ type: 'campaign_data', data: { id: 1 } });

  // useApplicationWebSocket: new_application (carol created this quest) …
  const [alice, bob, dave] = await Promise.all(['alice', 'bob', 'dave'].map((u) => ApiUser.signIn(h.url, u)));
  const quests = await carol.get<{ results: Quest[] }>(`/api/quests/?creator=${carol.id}`);
  const mine = quests.results[0]!;
  const applied = await alice!.post<Application>(`/api/quests/${mine.id}/applications/`, { message: 'Count me in' });
  await p.waitForFunction(() => (window as unknown as { seed: { apps: unknown[] } }).seed.apps.length >= 1, null, { timeout: 2000 });
  // … and application_update (carol's own application to bob's quest).
  const carolsApps = await carol.get<{ results: Application[] }>('/api/applications/');
  const pending = carolsApps.results.find((a) => a.status === 'pending')!;
  await bob!.patch(`/api/applications/${pending.id}/`, { status: 'approved' });
  await p.waitForFunction(() => (window as unknown as { seed: { apps: unknown[] } }).seed.apps.length >= 2, null, { timeout: 2000 });

  // useWebSocket: a contribution in the campaign room.
  const contribution = await dave!.post<{ id: number }>('/api/campaigns/1/contributions/', { amount: '5.00' });
  await p.waitForFunction(() => (window as unknown as { seed: { room: unknown[] } }).seed.room.length >= 2, null, { timeout: 2000 });

  const s = await seen(p);
  expect(s.apps).toEqual([
    { type: 'new_application', data: { application_id: applied.id, applicant: 'alice', quest_title: mine.title, status: 'pending' } },
    {
      type: 'application_update',
      data: { application_id: pending.id, quest_title: pending.quest_title, status: 'approved', updated_at: expect.any(String) },
    },
  ]);
  expect(s.room[1]).toMatchObject({ type: 'contribution', data: { id: contribution.id, amount: '5.00', user: { username: 'dave' } } });
  await shot(p, 'seed-hooks');
  expect(page.errors).toEqual([]);
});
