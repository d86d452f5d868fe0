// Removed comments against a real herald: the client knows comment_removed,
// a resume replays the removal in the comment's place (never its text), and
// the campaign state drops the comment once however often the removal comes.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CampaignDetail, Comment, CommentReport, ReportedComment, ServerMessage } from '@herald/client';
import { applyCampaignMessage } from '../../src/hooks/campaignState';
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

describe('removed comments', () => {
  it('reach a connected client and leave its state', async () => {
    const camp = await carol.post<{ id: number }>('/api/campaigns/', { title: 'Moderated', goal_amount: '10.00', status: 'active' });
    const c = client(h.url, { url: `/ws/campaign/${camp.id}/`, version: 2 });
    let state: CampaignDetail | null = null;
    c.on('message', (m: ServerMessage) => (state = applyCampaignMessage(state, m)));
    c.connect();
    await next(c, 'subscribed');
    const made = await dave.post<Comment>(`/api/campaigns/${camp.id}/comments/`, { content: 'to be removed' });
    await until(() => state?.comments.some((x) => x.id === made.id) ?? false, 5000, 'the comment');
    expect(state!.comments_count).toBe(1);

    const removed = next(c, 'comment_removed');
    await dave.call('DELETE', `/api/campaigns/${camp.id}/comments/${made.id}/`);
    expect((await removed).data).toEqual({ id: made.id, campaign: camp.id });
    expect(state!.comments).toEqual([]);
    expect(state!.comments_count).toBe(0);
    c.close();
  });

  it('are replayed as their removal to a client that was away, never with their text', async () => {
    const camp = await carol.post<{ id: number }>('/api/campaigns/', { title: 'Replayed', goal_amount: '10.00', status: 'active' });
    const { transport, cut } = cuttableTransport();
    const c = client(h.url, { url: `/ws/campaign/${camp.id}/`, version: 2, transport, backoff: { baseMs: 400, maxMs: 400, random: () => 0.99 } });
    const seen = record(c, 'comment', 'comment_removed', 'campaign_data');
    c.connect();
    await next(c, 'subscribed');
    cut();
    await until(() => c.state === 'reconnecting', 2000, 'the loss');
    const made = await dave.post<Comment>(`/api/campaigns/${camp.id}/comments/`, { content: 'gone before you came back' });
    const kept = await dave.post<Comment>(`/api/campaigns/${camp.id}/comments/`, { content: 'stays' });
    await carol.post(`/api/campaigns/${camp.id}/comments/${made.id}/hide/`, undefined);
    expect(await next(c, 'resync')).toEqual({ recovered: true, groups: { [`campaign_${camp.id}`]: true } });
    await until(() => seen.length >= 4, 5000, 'the replay');
    const types = seen.slice(1).map(({ type, ev }) => `${type} ${(ev as { data: { id: number } }).data.id}`);
    expect(types).toEqual([`comment_removed ${made.id}`, `comment ${kept.id}`, `comment_removed ${made.id}`]);
    expect(JSON.stringify(seen)).not.toContain('gone before you came back');
    c.close();
  });

  it('are reported once per user and read by the owner', async () => {
    const camp = await carol.post<{ id: number }>('/api/campaigns/', { title: 'Reported', goal_amount: '10.00', status: 'active' });
    const made = await dave.post<Comment>(`/api/campaigns/${camp.id}/comments/`, { content: 'spam' });
    const r = await carol.post<CommentReport>(`/api/campaigns/${camp.id}/comments/${made.id}/report/`, { reason: 'Spam' });
    expect(r).toMatchObject({ comment: made.id, campaign: camp.id, reason: 'Spam' });
    await expect(carol.post(`/api/campaigns/${camp.id}/comments/${made.id}/report/`, {})).rejects.toThrow(/409/);
    const page = await carol.get<{ count: number; results: ReportedComment[] }>(`/api/campaigns/${camp.id}/reports/`);
    expect(page.count).toBe(1);
    expect(page.results[0]).toMatchObject({ comment: { id: made.id, content: 'spam' }, reports_count: 1, reasons: ['Spam'] });
    await expect(dave.get(`/api/campaigns/${camp.id}/reports/`)).rejects.toThrow(/403/);
  });
});
