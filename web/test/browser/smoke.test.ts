import { afterAll, beforeAll, inject, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { Herald } from '../setup/herald';
import { launch, openAs, shot, indicator } from './browser';
let h: Herald; let b: Browser;
beforeAll(async () => { h = await Herald.start({ bin: inject('heraldBin') }); b = await launch(); });
afterAll(async () => { await b?.close(); await h?.dispose(); });
it('smoke', async () => {
  const u = await openAs(b, h.url, 'alice');
  for (const p of ['/campaigns/', '/campaigns/1/', '/quests/', '/quests/1/', '/manage/', '/applications/', '/signin/']) {
    await u.page.goto(p);
    await u.page.waitForTimeout(700);
    await shot(u.page, 'smoke' + p.replace(/\//g, '_'));
  }
  console.log(u.errors);
});
