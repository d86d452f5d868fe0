import { describe, expect, it } from 'vitest';
import { addMoney, formatMoney, fromCents, toCents, type Campaign, type CampaignDetail, type Contribution } from '@herald/client';
import { applyCampaignMessage } from '../../src/hooks/campaignState';

describe('money', () => {
  it('adds decimal strings exactly', () => {
    expect(toCents('1200.50')).toBe(120050);
    expect(toCents('7')).toBe(700);
    expect(toCents('0.1')).toBe(10);
    expect(toCents('abc')).toBeNaN();
    expect(fromCents(5)).toBe('0.05');
    expect(addMoney('0.10', '0.20')).toBe('0.30');
    expect(addMoney('1525.50', '74.50')).toBe('1600.00');
    expect(formatMoney('1234.5', 'USD', 'en-US')).toBe('$1,234.50');
  });
});

const campaign = (): CampaignDetail => ({
  id: 1,
  owner: { id: 1, username: 'alice' },
  title: 't',
  description: '',
  goal_amount: '100.00',
  raised_amount: '10.00',
  currency: 'USD',
  status: 'active',
  contributions_count: 1,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-01T00:00:00Z',
  updates_count: 0,
  comments_count: 0,
  contributions: [],
  updates: [],
  comments: [],
  releases: [],
  milestones: [],
});

const contribution = (id: number, amount: string, campaignId = 1): Contribution => ({
  id,
  campaign: campaignId,
  user: { id: 2, username: 'bob' },
  amount,
  currency: 'USD',
  created_at: '2026-01-01T00:00:00Z',
});

describe('applyCampaignMessage', () => {
  it('adds a new contribution to the raised total once', () => {
    let c = applyCampaignMessage(null, { type: 'campaign_data', data: campaign() });
    c = applyCampaignMessage(c, { type: 'contribution', data: contribution(7, '2.50') });
    c = applyCampaignMessage(c, { type: 'contribution', data: contribution(7, '2.50') }); // its event after the REST answer
    expect(c?.raised_amount).toBe('12.50');
    expect(c?.contributions_count).toBe(2);
    expect(c?.contributions.map((x) => x.id)).toEqual([7]);
  });

  it('does not count again an old contribution the snapshot no longer nests', () => {
    const c = { ...campaign(), contributions: [contribution(60, '5.00'), contribution(51, '5.00')], contributions_count: 60 };
    expect(applyCampaignMessage(c, { type: 'contribution', data: contribution(7, '100.00') })).toBe(c);
    const next = applyCampaignMessage(c, { type: 'contribution', data: contribution(61, '1.00') });
    expect(next?.raised_amount).toBe('11.00');
  });

  it('ignores events for other campaigns and before the snapshot', () => {
    expect(applyCampaignMessage(null, { type: 'contribution', data: contribution(1, '1.00') })).toBeNull();
    const c = campaign();
    expect(applyCampaignMessage(c, { type: 'contribution', data: contribution(1, '1.00', 2) })).toBe(c);
  });

  it('replaces edited objects and counts new ones', () => {
    let c = applyCampaignMessage(campaign(), {
      type: 'comment',
      data: { id: 3, campaign: 1, user: { id: 2, username: 'bob' }, content: 'a', created_at: '', updated_at: '' },
    });
    c = applyCampaignMessage(c, {
      type: 'comment',
      data: { id: 3, campaign: 1, user: { id: 2, username: 'bob' }, content: 'edited', created_at: '', updated_at: '' },
    });
    expect(c?.comments_count).toBe(1);
    expect(c?.comments[0]?.content).toBe('edited');
    c = applyCampaignMessage(c, { type: 'campaign_data', data: campaign() });
    expect(c?.comments).toEqual([]);
  });

  it('drops a removed comment once, however often its removal comes', () => {
    const comment = (id: number) => ({ id, campaign: 1, user: { id: 2, username: 'bob' }, content: 'x', created_at: '', updated_at: '' });
    let c: CampaignDetail | null = { ...campaign(), comments: [comment(4), comment(3)], comments_count: 2 };
    c = applyCampaignMessage(c, { type: 'comment_removed', data: { id: 3, campaign: 1 } });
    expect(c?.comments.map((x) => x.id)).toEqual([4]);
    expect(c?.comments_count).toBe(1);
    const once = c;
    expect(applyCampaignMessage(c, { type: 'comment_removed', data: { id: 3, campaign: 1 } })).toBe(once); // a replay repeats it
    expect(applyCampaignMessage(c, { type: 'comment_removed', data: { id: 4, campaign: 2 } })).toBe(once); // another campaign's
    c = applyCampaignMessage(c, { type: 'comment_removed', data: { id: 4, campaign: 1 } });
    expect(c?.comments).toEqual([]);
    expect(c?.comments_count).toBe(0);
  });

  it("replaces the campaign's own fields on a campaign event and keeps what the contributions made", () => {
    const comment = { id: 3, campaign: 1, user: { id: 2, username: 'bob' }, content: 'x', created_at: '', updated_at: '' };
    let c: CampaignDetail | null = { ...campaign(), comments: [comment], comments_count: 1 };
    // A contribution applied from its REST answer, newer than the edit below.
    c = applyCampaignMessage(c, { type: 'contribution', data: contribution(7, '5.00') });
    // The edit's totals are from before that contribution.
    const edited: Campaign = {
      id: 1,
      owner: { id: 1, username: 'alice' },
      title: 'Renamed',
      description: '',
      goal_amount: '250.00',
      raised_amount: '10.00',
      currency: 'USD',
      status: 'closed',
      contributions_count: 1,
      created_at: '2026-01-01T00:00:00Z',
      updated_at: '2026-01-02T00:00:00Z',
    };
    c = applyCampaignMessage(c, { type: 'campaign', data: edited });
    expect(c).toMatchObject({ title: 'Renamed', goal_amount: '250.00', status: 'closed', updated_at: '2026-01-02T00:00:00Z' });
    expect(c).toMatchObject({ raised_amount: '15.00', contributions_count: 2, comments_count: 1 });
    expect(c?.comments).toEqual([comment]);
    expect(c?.contributions.map((x) => x.id)).toEqual([7]);
    const before = c;
    expect(applyCampaignMessage(c, { type: 'campaign', data: { ...edited, id: 2, title: 'Another' } })).toBe(before);
    expect(applyCampaignMessage(null, { type: 'campaign', data: edited })).toBeNull();
  });
});
