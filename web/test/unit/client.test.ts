// @herald/client against a real herald: typed events, state, credentials,
// refusals, client messages, reconnects and backoff.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  AckUnsupportedError,
  tokenAuth,
  type Application,
  type Campaign,
  type CampaignDetail,
  type Comment,
  type ConnectionState,
  type Contribution,
  type Quest,
} from '@herald/client';
import { ApiUser, Herald } from '../setup/herald';
import { client, next, record, until } from './helpers';

let h: Herald;
let alice: ApiUser, bob: ApiUser, carol: ApiUser, dave: ApiUser;

beforeAll(async () => {
  h = await Herald.start({ bin: inject('heraldBin') });
  [alice, bob, carol, dave] = (await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => ApiUser.signIn(h.url, u)))) as [
    ApiUser,
    ApiUser,
    ApiUser,
    ApiUser,
  ];
});
afterAll(() => h?.dispose());

function bearer(u: ApiUser) {
  return tokenAuth({ apiBase: h.url, getAccess: () => u.access, getRefresh: () => u.refresh, setAccess: (t) => (u.access = t) });
}

describe('campaign room', () => {
  it('sends the snapshot, then every object event typed and with v2 positions', async () => {
    const c = client(h.url, { url: '/ws/campaign/1/', version: 2 });
    const states: ConnectionState[] = [];
    c.on('state', (s) => states.push(s));
    const snap = next(c, 'campaign_data');
    c.connect();
    const s = await snap;
    expect(states).toEqual(['connecting', 'open']);
    expect(s.data.id).toBe(1);
    expect(s.data.title).toMatch(/Solar kiosk/);
    expect(s.data.contributions.length).toBeGreaterThan(0);

    const contrib = next(c, 'contribution');
    const posted = await dave.post<Contribution>('/api/campaigns/1/contributions/', { amount: '12.34' });
    const m = await contrib;
    expect(m.data).toEqual(posted);
    expect(m.group).toBe('campaign_1');
    expect(typeof m.offset).toBe('number');
    expect(typeof m.epoch).toBe('string');
    expect(c.positions.get('campaign_1')).toEqual({ group: 'campaign_1', offset: m.offset, epoch: m.epoch });

    const seen = record(c, 'update', 'comment', 'release', 'milestone');
    await alice.post('/api/campaigns/1/updates/', { title: 'Panels ordered', content: 'Arriving Monday.' });
    await carol.post('/api/campaigns/1/comments/', { content: 'Lovely!' });
    await alice.post('/api/campaigns/1/releases/', { version: '0.2', title: 'Parts list' });
    await alice.post('/api/campaigns/1/milestones/', { title: 'Shelves', target_amount: '6000.00' });
    await until(() => seen.length >= 4, 5000, 'four events');
    expect(seen.map((e) => e.type)).toEqual(['update', 'comment', 'release', 'milestone']);
    const offsets = seen.map((e) => (e.ev as { offset: number }).offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(c.positions.get('campaign_1')?.offset).toBe(offsets[3]);
    c.close();
    expect(c.state).toBe('closed');
  });

  it('is told why a campaign is unavailable and does not retry', async () => {
    const c = client(h.url, { url: '/ws/campaign/9999/' });
    const err = next(c, 'error');
    const closed = next(c, 'close');
    c.connect();
    expect((await err).data.code).toBe('not_found');
    const info = await closed;
    expect(info).toMatchObject({ code: 4404, wasOpen: true, willReconnect: false, delayMs: null });
    expect(c.state).toBe('closed');
  });

  it("gets the campaign's edits typed, and is closed for good when it is made a draft again", async () => {
    const made = await dave.post<Campaign>('/api/campaigns/', { title: 'Live title', goal_amount: '50.00', status: 'active' });
    const c = client(h.url, { url: `/ws/campaign/${made.id}/`, version: 2 });
    const snap = next(c, 'campaign_data');
    c.connect();
    await snap;
    const edited = next(c, 'campaign');
    const answer = await dave.patch<CampaignDetail>(`/api/campaigns/${made.id}/`, { title: 'Edited title', goal_amount: '75.00' });
    const ev = await edited;
    expect(ev.group).toBe(`campaign_${made.id}`);
    // The PATCH answer without its nested lists: the campaign as listed.
    const { updates_count, comments_count, contributions, updates, comments, releases, milestones, ...listed } = answer;
    expect(ev.data).toEqual(listed);
    expect(ev.data).toMatchObject({ title: 'Edited title', goal_amount: '75.00', status: 'active' });

    const err = next(c, 'error');
    const closed = next(c, 'close');
    await dave.patch(`/api/campaigns/${made.id}/`, { status: 'draft' });
    expect((await err).data.code).toBe('not_found');
    expect(await closed).toMatchObject({ code: 4404, willReconnect: false });
    expect(c.state).toBe('closed');
  });

  it('is closed for good when its campaign is deleted, its owner too', async () => {
    const made = await dave.post<Campaign>('/api/campaigns/', { title: 'Soon gone', goal_amount: '5.00', status: 'active' });
    const c = client(h.url, { url: `/ws/campaign/${made.id}/`, version: 2, auth: bearer(dave) });
    const snap = next(c, 'campaign_data');
    c.connect();
    await snap;
    const err = next(c, 'error');
    const closed = next(c, 'close');
    await dave.call('DELETE', `/api/campaigns/${made.id}/`);
    expect((await err).data.code).toBe('not_found');
    expect(await closed).toMatchObject({ code: 4404, willReconnect: false });
    expect(c.state).toBe('closed');
  });

  it('publishes an announced object once; answers bad messages; has no acknowledgements on v1', async () => {
    const c = client(h.url, { url: '/ws/campaign/2/', auth: bearer(carol) });
    c.connect();
    await next(c, 'campaign_data');
    const comments = record(c, 'comment');
    const made = await carol.post<Comment>('/api/campaigns/2/comments/', { content: 'Announced too' });
    expect(c.send({ type: 'comment', data: { id: made.id } })).toBe(true);
    await until(() => comments.length >= 1, 5000, 'the comment');
    await new Promise((r) => setTimeout(r, 300));
    expect(comments).toHaveLength(1);

    const err = next(c, 'error');
    c.send({ type: 'shout', data: {} });
    expect((await err).data.code).toBe('unknown_type');

    expect(c.supportsAcks).toBe(false);
    await expect(c.sendWithAck({ type: 'comment', data: { id: made.id } })).rejects.toBeInstanceOf(AckUnsupportedError);
    c.close();
    expect(c.send({ type: 'comment', data: { id: made.id } })).toBe(false);
  });

  it('reconnect() connects again at once and asks for a resync', async () => {
    const c = client(h.url, { url: '/ws/campaign/1/' });
    const first = next(c, 'campaign_data');
    c.connect();
    await first;
    const resync = next(c, 'resync');
    const again = next(c, 'campaign_data');
    const opened = next(c, 'open');
    c.reconnect();
    expect(await opened).toMatchObject({ reconnect: true, transport: 'websocket' });
    expect(await resync).toEqual({ recovered: false, groups: {} });
    expect((await again).data.id).toBe(1);
    c.close();
  });
});

describe('applications', () => {
  it('tells the creator of new applications and the applicant of decisions', async () => {
    const creator = client(h.url, { url: '/ws/applications/', auth: bearer(bob) });
    const applicant = client(h.url, { url: '/ws/applications/', auth: bearer(dave) });
    creator.connect();
    applicant.connect();
    await Promise.all([next(creator, 'open'), next(applicant, 'open')]);

    const quests = await bob.get<{ results: Quest[] }>(`/api/quests/?creator=${bob.id}`);
    const quest = quests.results.find((q) => q.title === 'Photograph the harbour wall')!;
    const newApp = next(creator, 'new_application');
    const app = await dave.post<Application>(`/api/quests/${quest.id}/applications/`, { message: 'I have a drone.' });
    expect((await newApp).data).toEqual({ application_id: app.id, applicant: 'dave', quest_title: quest.title, status: 'pending' });

    const update = next(applicant, 'application_update');
    await bob.patch(`/api/applications/${app.id}/`, { status: 'approved' });
    const u = await update;
    expect(u.data).toMatchObject({ application_id: app.id, quest_title: quest.title, status: 'approved' });
    expect(Date.parse(u.data.updated_at)).not.toBeNaN();
    creator.close();
    applicant.close();
  });

  it('renews a refused token before reconnecting', async () => {
    let access = 'not-a-valid-token';
    let renewed = 0;
    const auth = tokenAuth({
      apiBase: h.url,
      getAccess: () => access,
      getRefresh: () => carol.refresh,
      setAccess: (t) => {
        access = t;
        renewed++;
      },
    });
    const c = client(h.url, { url: '/ws/applications/', auth, backoff: { baseMs: 20 } });
    const closes = record(c, 'close');
    const open = next(c, 'open');
    c.connect();
    await open;
    expect(renewed).toBe(1);
    expect(closes).toHaveLength(1); // the refused handshake (HTTP 403)
    expect(closes[0]?.ev).toMatchObject({ wasOpen: false, willReconnect: true });
    c.close();
  });

  it('renews an expired token before the first attempt', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    let access = `${b64({ alg: 'HS256' })}.${b64({ sub: String(carol.id), exp: Math.floor(Date.now() / 1000) - 60 })}.sig`;
    let renewed = 0;
    const c = client(h.url, {
      url: '/ws/applications/',
      auth: tokenAuth({ apiBase: h.url, getAccess: () => access, getRefresh: () => carol.refresh, setAccess: (t) => ((access = t), renewed++) }),
    });
    const closes = record(c, 'close');
    const open = next(c, 'open');
    c.connect();
    await open;
    expect(renewed).toBe(1);
    expect(closes).toHaveLength(0);
    c.close();
  });
});

describe('reconnection', () => {
  it('survives a server restart with bounded, jittered backoff that resets on success', async () => {
    const own = await Herald.start({ bin: inject('heraldBin') });
    try {
      const c = client(own.url, { url: '/ws/campaign/1/', backoff: { baseMs: 50, maxMs: 400 }, stableAfterMs: 300 });
      const closes = record(c, 'close');
      const resyncs = record(c, 'resync');
      const snaps = record(c, 'campaign_data');
      c.connect();
      await until(() => snaps.length === 1, 10_000, 'the snapshot');

      await own.stop();
      await until(() => closes.length >= 4, 10_000, 'failed attempts while down');
      expect(closes[0]?.ev).toMatchObject({ code: 1012, wasOpen: true, willReconnect: true });
      for (const { ev } of closes) {
        const d = (ev as { delayMs: number }).delayMs;
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(400);
      }
      expect(closes.slice(1).every(({ ev }) => (ev as { wasOpen: boolean }).wasOpen === false)).toBe(true);
      expect(c.state).toBe('reconnecting');

      // Meanwhile, money arrives through another herald on the same
      // database, whose events this client never sees.
      const other = await Herald.start({ bin: own.bin, dir: own.dir });
      try {
        const dave2 = await ApiUser.signIn(other.url, 'dave');
        await dave2.post('/api/campaigns/1/contributions/', { amount: '99.00' });
      } finally {
        await other.stop();
      }
      await own.start();
      await until(() => c.state === 'open' && snaps.length === 2, 10_000, 'the reconnect');
      expect(resyncs).toEqual([{ type: 'resync', ev: { recovered: false, groups: {} } }]);
      const snap = snaps[1]?.ev as { data: { contributions: Contribution[] } };
      expect(snap.data.contributions.some((x) => x.amount === '99.00')).toBe(true);

      // Stable for a while: the next loss starts from the smallest window.
      await new Promise((r) => setTimeout(r, 400));
      const before = closes.length;
      await own.stop();
      await until(() => closes.length > before, 10_000, 'the close');
      expect((closes[before]?.ev as { delayMs: number }).delayMs).toBeLessThan(50);
      c.close();
    } finally {
      await own.dispose();
    }
  });
});
