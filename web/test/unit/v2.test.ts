// Protocol v2 against a real herald: acknowledgements, presence, resume
// after a lost connection, subscribe.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AckRejectedError, tokenAuth, type Comment, type Contribution } from '@herald/client';
import { ApiUser, Herald } from '../setup/herald';
import { client, cuttableTransport, next, record, until } from './helpers';

let h: Herald;
let carol: ApiUser, dave: ApiUser;

beforeAll(async () => {
  h = await Herald.start({ bin: inject('heraldBin') });
  carol = await ApiUser.signIn(h.url, 'carol');
  dave = await ApiUser.signIn(h.url, 'dave');
});
afterAll(() => h?.dispose());

const bearer = (u: ApiUser) =>
  tokenAuth({ apiBase: h.url, getAccess: () => u.access, getRefresh: () => u.refresh, setAccess: (t) => (u.access = t) });

describe('v2', () => {
  it('acknowledges client messages and refuses bad ones by id', async () => {
    const c = client(h.url, { url: '/ws/campaign/2/', version: 2, auth: bearer(carol) });
    c.connect();
    await next(c, 'campaign_data');
    expect(c.supportsAcks).toBe(true);
    const made = await carol.post<Comment>('/api/campaigns/2/comments/', { content: 'acked' });
    await expect(c.sendWithAck({ type: 'comment', data: { id: made.id } })).resolves.toBeUndefined();
    const refused = c.sendWithAck({ type: 'comment', data: { id: 999_999 } });
    await expect(refused).rejects.toBeInstanceOf(AckRejectedError);
    await expect(refused).rejects.toMatchObject({ code: 'not_found' });
    c.close();
  });

  it('counts who is watching a campaign room', async () => {
    const a = client(h.url, { url: '/ws/campaign/4/', version: 2 });
    const b = client(h.url, { url: '/ws/campaign/4/', version: 2 });
    const counts = record(a, 'presence');
    a.connect();
    b.connect();
    await until(() => counts.some(({ ev }) => (ev as { data: { count: number } }).data.count === 2), 5000, 'presence 2');
    expect((counts.at(-1)?.ev as { data: { group: string } }).data.group).toBe('campaign_4');
    b.close();
    await until(() => (counts.at(-1)?.ev as { data: { count: number } }).data.count === 1, 5000, 'presence 1');
    a.close();
  });

  it('resumes after a lost connection: the missed events, once, in order, and no new snapshot', async () => {
    const { transport, cut } = cuttableTransport();
    const c = client(h.url, { url: '/ws/campaign/1/', version: 2, transport, backoff: { baseMs: 400, maxMs: 400, random: () => 0.99 } });
    const snaps = record(c, 'campaign_data');
    const contribs = record(c, 'contribution');
    c.connect();
    await until(() => snaps.length === 1, 5000, 'the snapshot');
    await dave.post('/api/campaigns/1/contributions/', { amount: '1.00' });
    await until(() => contribs.length === 1, 5000, 'a first event (a position to resume from)');

    const resync = next(c, 'resync');
    cut();
    await until(() => c.state === 'reconnecting', 2000, 'the loss');
    const missed = [
      await dave.post<Contribution>('/api/campaigns/1/contributions/', { amount: '2.00' }),
      await dave.post<Contribution>('/api/campaigns/1/contributions/', { amount: '3.00' }),
    ];
    expect(await resync).toEqual({ recovered: true, groups: { campaign_1: true } });
    await until(() => contribs.length === 3, 5000, 'the replay');
    expect(contribs.slice(1).map(({ ev }) => (ev as { data: Contribution }).data.id)).toEqual(missed.map((m) => m.id));
    expect(snaps).toHaveLength(1);
    c.close();
  });

  it('knows its position in a quiet room from the start, and resumes it after a lost connection', async () => {
    const quiet = await carol.post<{ id: number }>('/api/campaigns/', { title: 'Quiet', goal_amount: '10.00', status: 'active' });
    const group = `campaign_${quiet.id}`;
    const { transport, cut } = cuttableTransport();
    const c = client(h.url, { url: `/ws/campaign/${quiet.id}/`, version: 2, transport, backoff: { baseMs: 400, maxMs: 400, random: () => 0.99 } });
    const snaps = record(c, 'campaign_data');
    const contribs = record(c, 'contribution');
    const joined = next(c, 'subscribed');
    c.connect();
    // No event yet: the room's position comes with the join.
    expect((await joined).data).toEqual({ group, recovered: true, epoch: '', offset: 0 });
    expect(c.positions.get(group)).toEqual({ group, epoch: '', offset: 0 });

    const resync = next(c, 'resync');
    cut();
    await until(() => c.state === 'reconnecting', 2000, 'the loss');
    const missed = [
      await dave.post<Contribution>(`/api/campaigns/${quiet.id}/contributions/`, { amount: '1.00' }),
      await dave.post<Contribution>(`/api/campaigns/${quiet.id}/contributions/`, { amount: '2.00' }),
    ];
    expect(await resync).toEqual({ recovered: true, groups: { [group]: true } });
    await until(() => contribs.length === 2, 5000, 'the replay');
    expect(contribs.map(({ ev }) => (ev as { data: Contribution }).data.id)).toEqual(missed.map((m) => m.id));
    expect(snaps).toHaveLength(1);
    expect(c.positions.get(group)).toMatchObject({ group, offset: 2 });
    c.close();
  });

  it('subscribes to more groups the user may see, and not to others', async () => {
    const c = client(h.url, { url: '/ws/campaign/1/', version: 2, auth: bearer(carol) });
    c.connect();
    await next(c, 'campaign_data');
    const subscribed = next(c, 'subscribed', (m) => m.data.group === 'campaign_2');
    await c.subscribe('campaign_2');
    const told = (await subscribed).data;
    expect(told).toMatchObject({ group: 'campaign_2', recovered: true });
    expect(c.positions.get('campaign_2')).toEqual({ group: 'campaign_2', epoch: told.epoch, offset: told.offset });
    const ev = next(c, 'comment', (m) => m.data.campaign === 2);
    await dave.post('/api/campaigns/2/comments/', { content: 'over here' });
    expect((await ev).group).toBe('campaign_2');
    await expect(c.subscribe(`user_${dave.id}`)).rejects.toMatchObject({ code: 'forbidden' });
    await c.unsubscribe('campaign_2');
    c.close();
  });
});
