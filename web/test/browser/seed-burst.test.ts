// A burst: one contribution that reaches three milestones makes herald send
// `contribution` and three `milestone` frames back to back. The seed's
// useWebSocket keeps only lastMessage, so React, rendering once for several
// frames, can hand its dashboard only some of them; herald's hooks see every
// one. The page (test/fixtures/seed/burst.tsx) watches one room four ways:
// see there. docs/protocol.md §9 says what is lost and shows the fix.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { Campaign, Contribution, Milestone } from '@herald/client';
import { ApiUser, Herald, REPO } from '../setup/herald';
import { launch, openAs, type UserPage } from './browser';
import { FIXTURE, SeedSite, bundleSeedPage, pointAt } from './seed-page';

/** The one-line fix of docs/protocol.md §9, and the import it needs. */
const FIX_IMPORT = "import { flushSync } from 'react-dom';";
const FIX_LINE = 'flushSync(() => setLastMessage(event));';
const ROUNDS = 5;

interface Frame {
  type: string;
  data: { id?: number; reached?: boolean };
}
interface Burst {
  seed: Frame[];
  fixed: Frame[];
  heraldLast: Frame[];
  herald: Frame[];
  room: Frame[];
  seedConnected: boolean;
  fixedConnected: boolean;
  roomState: { contributions: number[]; reached: number[] } | null;
}

let h: Herald;
let browser: Browser;
let page: UserPage;
let site: SeedSite | null = null;

/** The seed's useWebSocket.js with the fix applied (each line exactly once). */
function fixed(source: string): string {
  const react = "import { useState, useEffect, useRef } from 'react';";
  const set = 'setLastMessage(event);';
  for (const line of [react, set]) {
    if (source.split(line).length !== 2) throw new Error(`the seed's hook has not exactly one ${JSON.stringify(line)}`);
  }
  return source.replace(react, `${react}\n${FIX_IMPORT}`).replace(set, FIX_LINE);
}

beforeAll(async () => {
  site = await SeedSite.start('a burst');
  const args = ['--allowed-origins', site.origin];
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin'), args }), launch()]);
  const port = h.port;
  site.script = await bundleSeedPage('burst.tsx', port, [
    {
      // ./useWebSocket.fixed.js: the verbatim hook with the fix applied.
      name: 'seed-fix',
      setup(b) {
        b.onResolve({ filter: /^\.\/useWebSocket\.fixed\.js$/ }, () => ({ path: join(FIXTURE, 'useWebSocket.js'), namespace: 'seed-fix' }));
        b.onLoad({ filter: /.*/, namespace: 'seed-fix' }, (a) => ({
          contents: fixed(pointAt(readFileSync(a.path, 'utf8'), port)),
          loader: 'jsx',
          resolveDir: FIXTURE,
        }));
      },
    },
  ]);
  page = await openAs(browser, site.origin);
});
afterAll(async () => {
  site?.close();
  await browser?.close();
  await h?.dispose();
});

const byNumber = (a: number, b: number) => a - b;
const key = (f: Frame) => `${f.type}#${f.data.id}`;
const burst = (p: Page) => p.evaluate(() => (window as unknown as { burst: Burst }).burst);

/** sub's items appear in seq in the same order (some may be left out). */
function isSubsequence(sub: string[], seq: string[]): boolean {
  let i = 0;
  for (const s of seq) if (i < sub.length && sub[i] === s) i++;
  return i === sub.length;
}

it('documents the fix that the test applies', () => {
  const doc = readFileSync(join(REPO, 'docs', 'protocol.md'), 'utf8');
  expect(doc).toContain(FIX_IMPORT);
  expect(doc).toContain(FIX_LINE);
});

it('the seed’s hook may show a burst’s last frame only; herald’s hooks and the fixed hook see every frame', async () => {
  const p = page.page;
  const [carol, dave] = await Promise.all([ApiUser.signIn(h.url, 'carol'), ApiUser.signIn(h.url, 'dave')]);
  const report: string[] = [];
  let seedMissed = 0;
  let heraldLastMissed = 0;

  for (let round = 1; round <= ROUNDS; round++) {
    // Three milestones below one contribution's amount, made before the
    // page connects: the page's first frame is the campaign, then the burst.
    const campaign = await carol.post<Campaign>('/api/campaigns/', { title: `Burst ${round}`, goal_amount: '1000.00', status: 'active' });
    const milestones: Milestone[] = [];
    for (const target of ['10.00', '20.00', '30.00']) {
      milestones.push(await carol.post<Milestone>(`/api/campaigns/${campaign.id}/milestones/`, { title: `At ${target}`, target_amount: target }));
    }

    await p.goto(`/?campaign=${campaign.id}`);
    await p.waitForFunction(
      () => {
        const b = (window as unknown as { burst?: Burst }).burst;
        return (
          b && b.seedConnected && b.fixedConnected && b.seed.length >= 1 && b.fixed.length >= 1 && b.herald.length >= 1 && b.roomState !== null
        );
      },
      null,
      { timeout: 10_000 },
    );
    const before = await burst(p);
    for (const frames of [before.seed, before.fixed, before.herald, before.heraldLast, before.room]) {
      expect(frames.map(key)).toEqual([`campaign_data#${campaign.id}`]);
    }

    const contribution = await dave.post<Contribution>(`/api/campaigns/${campaign.id}/contributions/`, { amount: '50.00' });

    // herald's hooks: every frame, in the order herald sent it.
    await p.waitForFunction(
      () => {
        const b = (window as unknown as { burst: Burst }).burst;
        return b.herald.length >= 5 && b.room.length >= 5 && b.roomState!.reached.length === 3;
      },
      null,
      { timeout: 5000 },
    );
    const got = await burst(p);
    const frames = got.herald.slice(1);
    const sent = frames.map(key);
    expect(frames).toHaveLength(4);
    expect(sent[0]).toBe(`contribution#${contribution.id}`);
    // The milestones' order among themselves is herald's (the order it
    // recorded them); every connection to the room gets that same order.
    expect(frames.slice(1).map((f) => f.type)).toEqual(['milestone', 'milestone', 'milestone']);
    expect(frames.slice(1).map((f) => f.data.id!).sort(byNumber)).toEqual(milestones.map((m) => m.id).sort(byNumber));
    expect(frames.slice(1).every((f) => f.data.reached === true)).toBe(true);
    expect(got.room.slice(1).map(key)).toEqual(sent);
    expect(got.roomState).toEqual({ contributions: [contribution.id], reached: expect.arrayContaining(milestones.map((m) => m.id)) });

    // The lastMessage consumers: each eventually renders the burst's last
    // frame (React renders the newest state), so wait for that.
    await p.waitForFunction(
      (last) => {
        const b = (window as unknown as { burst: Burst }).burst;
        const ends = (fs: Frame[]) => fs.length > 1 && `${fs.at(-1)!.type}#${fs.at(-1)!.data.id}` === last;
        return ends(b.seed) && ends(b.fixed) && ends(b.heraldLast);
      },
      sent[3],
      { timeout: 5000 },
    );
    const end = await burst(p);

    // The fixed hook renders each frame before the next one is handled
    // (flushSync), so its dashboard sees the whole burst.
    expect(end.fixed.slice(1).map(key)).toEqual(sent);

    // The seed's hook: how many frames React renders depends on when they
    // arrive relative to its renders, which the test does not control. What
    // is certain is that its dashboard sees some of them, in order, ending
    // with the last; it usually sees fewer than the four (that is the bug),
    // but a run where each frame got a render of its own is no failure, so
    // only record what it saw.
    const seed = end.seed.slice(1).map(key);
    const heraldLast = end.heraldLast.slice(1).map(key);
    for (const s of [seed, heraldLast]) {
      expect(isSubsequence(s, sent), `${s.join(', ')} within ${sent.join(', ')}`).toBe(true);
      expect(s.at(-1)).toBe(sent[3]);
    }
    if (seed.length < 4) seedMissed++;
    if (heraldLast.length < 4) heraldLastMissed++;
    report.push(`round ${round}: sent ${sent.join(', ')}; seed's dashboard saw ${seed.join(', ')}; herald's lastMessage: ${heraldLast.join(', ')}`);
  }

  console.log(
    [
      `the seed's useWebSocket missed frames of the burst in ${seedMissed} of ${ROUNDS} rounds`,
      `(herald's useWebSocket lastMessage, consumed the same way: ${heraldLastMissed} of ${ROUNDS}; its onMessage, useCampaignRoom and the fixed hook: none)`,
      ...report,
    ].join('\n'),
  );
  expect(page.errors).toEqual([]);
});
