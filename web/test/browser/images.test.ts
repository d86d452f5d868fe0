// An update's image: the owner attaches one when posting an update, and
// every other browser on the campaign sees it appear live, over WebSocket
// and over Server-Sent Events, served by herald from /media/; a file that
// is no image is refused at its field.
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Herald } from '../setup/herald';
import { breakWebSockets, indicator, launch, openAs, shot, unexpected, type UserPage } from './browser';

let h: Herald;
let browser: Browser;
let alice: UserPage, carol: UserPage, visitor: UserPage, streamed: UserPage;

beforeAll(async () => {
  [h, browser] = await Promise.all([Herald.start({ bin: inject('heraldBin') }), launch()]);
  [alice, carol, visitor, streamed] = await Promise.all([
    openAs(browser, h.url, 'alice'),
    openAs(browser, h.url, 'carol'),
    openAs(browser, h.url),
    openAs(browser, h.url),
  ]);
  // This visitor's page reads the room as Server-Sent Events.
  await breakWebSockets(streamed);
});
afterAll(async () => {
  await browser?.close();
  await h?.dispose();
});

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A w×h RGB PNG: a gradient, so each one is a real picture. */
function png(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    const row = y * (1 + 3 * w); // filter byte 0, then the pixels
    for (let x = 0; x < w; x++) {
      rows[row + 1 + 3 * x] = (x * 255) / w;
      rows[row + 2 + 3 * x] = (y * 255) / h;
      rows[row + 3 + 3 * x] = 160;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The image of the update titled title on p, once it has loaded, with its natural size. */
async function loadedImage(p: Page, title: string, timeout: number): Promise<{ src: string; width: number; height: number }> {
  const img = p.getByTestId('updates').getByRole('listitem').filter({ hasText: title }).getByTestId('update-image');
  await img.waitFor({ timeout });
  await p.waitForFunction((el) => el instanceof HTMLImageElement && el.complete && el.naturalWidth > 0, await img.elementHandle(), {
    timeout,
  });
  return img.evaluate((el: HTMLImageElement) => ({ src: el.getAttribute('src') ?? '', width: el.naturalWidth, height: el.naturalHeight }));
}

it('an image attached to an update appears live in every browser', async () => {
  const all = [alice, carol, visitor, streamed];
  const sse = streamed.page.waitForRequest((r) => new URL(r.url()).pathname === '/sse/campaign/1/', { timeout: 15_000 });
  await Promise.all(all.map((u) => u.page.goto('/campaigns/1/')));
  await sse;
  await Promise.all(all.map((u) => indicator(u.page, 'open', 15_000)));

  const updates = alice.page.getByRole('region', { name: 'Updates' });
  await updates.getByText('Post an update').click();
  await updates.getByLabel('Title').fill('The roof, from above');
  await updates.getByLabel('Content').fill('A drone picture of the panels.');
  // The name and type the browser gives are not what herald goes by.
  await updates.getByLabel('Image (optional)').setInputFiles({ name: '../../roof photo.png', mimeType: 'image/png', buffer: png(120, 80) });
  await updates.getByRole('button', { name: 'Post update' }).click();

  const seen = await Promise.all([visitor, streamed, carol, alice].map((u) => loadedImage(u.page, 'The roof, from above', 5000)));
  for (const img of seen) {
    expect(img.src).toMatch(/^\/media\/campaign_updates\/[0-9a-f]{32}\.png$/);
    expect([img.width, img.height]).toEqual([120, 80]);
  }
  expect(new Set(seen.map((i) => i.src)).size).toBe(1);
  // The form is empty again: no file left to post twice.
  expect(await updates.getByLabel('Image (optional)').evaluate((el: HTMLInputElement) => el.files?.length ?? 0)).toBe(0);

  // Served as herald says: the image's type, never sniffed, cached long.
  const res = await visitor.context.request.get(seen[0]!.src);
  expect(res.status()).toBe(200);
  expect(res.headers()['content-type']).toBe('image/png');
  expect(res.headers()['x-content-type-options']).toBe('nosniff');
  expect(res.headers()['cache-control']).toContain('max-age=31536000');
  await shot(visitor.page, 'campaign-update-image');

  // An update without an image shows none.
  await updates.getByLabel('Title').fill('No picture today');
  await updates.getByLabel('Content').fill('Just words.');
  await updates.getByRole('button', { name: 'Post update' }).click();
  for (const u of [visitor, streamed]) {
    const plain = u.page.getByTestId('updates').getByRole('listitem').filter({ hasText: 'No picture today' });
    await plain.waitFor({ timeout: 5000 });
    expect(await plain.getByTestId('update-image').count()).toBe(0);
  }
});

it('a file that is no image is refused at its field, and nothing is posted', async () => {
  const updates = alice.page.getByRole('region', { name: 'Updates' });
  await updates.getByLabel('Title').fill('Not a picture');
  await updates.getByLabel('Content').fill('This should not be posted.');
  await updates.getByLabel('Image (optional)').setInputFiles({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('just some text') });
  await updates.getByRole('button', { name: 'Post update' }).click();
  await updates.getByText('is not a PNG, JPEG, GIF or WebP image').waitFor({ timeout: 5000 });
  await shot(alice.page, 'campaign-update-image-refused');
  for (const u of [visitor, streamed]) expect(await u.page.getByTestId('updates').getByText('Not a picture').count()).toBe(0);
  // The refused upload is the one failed request the owner's browser reports.
  expect(alice.errors.filter((e) => !e.includes('(/api/campaigns/1/updates/)'))).toEqual([]);
  alice.errors.length = 0;
});

it('logged no errors in any browser', () => {
  expect(alice.errors).toEqual([]);
  expect(carol.errors).toEqual([]);
  expect(visitor.errors).toEqual([]);
  expect(unexpected(streamed.errors, true)).toEqual([]);
});
