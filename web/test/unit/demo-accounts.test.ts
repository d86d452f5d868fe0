// The sign-in page's list of what each demo account has (src/app/demo.ts)
// is what a fresh herald's demo data really gives them.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Application, Campaign, Quest } from '@herald/client';
import type { Page } from '../../src/app/api';
import { DEMO_ACCOUNTS, DEMO_PASSWORD } from '../../src/app/demo';
import { ApiUser, DEMO_PASSWORD as SEED_PASSWORD, Herald } from '../setup/herald';

let h: Herald;
beforeAll(async () => {
  h = await Herald.start({ bin: inject('heraldBin') });
});
afterAll(() => h?.dispose());

it('lists every demo account with its password', () => {
  expect(DEMO_PASSWORD).toBe(SEED_PASSWORD);
  expect(DEMO_ACCOUNTS.map((a) => a.username)).toEqual(['alice', 'bob', 'carol', 'dave']);
});

it.each(DEMO_ACCOUNTS)('says what $username owns and applied to', async (want) => {
  const u = await ApiUser.signIn(h.url, want.username);
  const sorted = <T>(xs: T[]) => [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const campaigns = await u.get<Page<Campaign>>(`/api/campaigns/?owner=${u.id}&page_size=100`);
  expect(sorted(campaigns.results.map((c) => ({ title: c.title, status: c.status })))).toEqual(sorted(want.campaigns));
  const quests = await u.get<Page<Quest>>(`/api/quests/?creator=${u.id}&page_size=100`);
  expect(sorted(quests.results.map((q) => q.title))).toEqual(sorted(want.quests));
  const apps = await u.get<Page<Application>>('/api/applications/?page_size=100');
  expect(sorted(apps.results.map((a) => ({ quest: a.quest_title, status: a.status })))).toEqual(sorted(want.applications));
});
