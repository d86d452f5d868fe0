import { addMoney, type CampaignDetail, type ServerMessage } from '@herald/client';

/**
 * Applies one campaign-room message to the campaign as shown. campaign_data
 * replaces everything; the five object events insert or replace by id, so an
 * object seen twice (the REST answer and then its event, a replay, an edit)
 * is counted once. The raised total grows with each new contribution (the
 * events do not carry the campaign's totals). comment_removed drops the
 * comment, counted once however often it comes (a replay repeats it); one
 * the snapshot did not nest is counted down by the next snapshot. campaign
 * (the owner edited the campaign) replaces the campaign's own fields: its
 * title, description, goal, currency, status; the nested lists and their
 * counts stay, and so do the raised total and the contributions count, which
 * follow the contributions applied (a contribution sends no campaign event,
 * and one applied from its REST answer may be newer than the edit).
 */
export function applyCampaignMessage(c: CampaignDetail | null, m: ServerMessage): CampaignDetail | null {
  if (m.type === 'campaign_data') return m.data;
  if (!c) return c;
  switch (m.type) {
    case 'contribution': {
      if (m.data.campaign !== c.id) return c;
      // The snapshot nests only the newest contributions. One older than all
      // of them (a repeated announce of an old object) is already in the
      // raised total: counting it again would inflate it.
      const oldest = c.contributions.reduce((min, x) => Math.min(min, x.id), Number.POSITIVE_INFINITY);
      const known = c.contributions.some((x) => x.id === m.data.id);
      const truncated = c.contributions.length > 0 && c.contributions.length < c.contributions_count;
      if (!known && truncated && m.data.id < oldest) return c;
      const [contributions, added] = upsert(c.contributions, m.data);
      if (!added) return { ...c, contributions };
      return {
        ...c,
        contributions,
        raised_amount: addMoney(c.raised_amount, m.data.amount),
        contributions_count: c.contributions_count + 1,
      };
    }
    case 'update': {
      if (m.data.campaign !== c.id) return c;
      const [updates, added] = upsert(c.updates, m.data);
      return { ...c, updates, updates_count: c.updates_count + (added ? 1 : 0) };
    }
    case 'comment': {
      if (m.data.campaign !== c.id) return c;
      const [comments, added] = upsert(c.comments, m.data);
      return { ...c, comments, comments_count: c.comments_count + (added ? 1 : 0) };
    }
    case 'comment_removed': {
      if (m.data.campaign !== c.id) return c;
      const comments = c.comments.filter((x) => x.id !== m.data.id);
      if (comments.length === c.comments.length) return c;
      return { ...c, comments, comments_count: Math.max(0, c.comments_count - 1) };
    }
    case 'release': {
      if (m.data.campaign !== c.id) return c;
      return { ...c, releases: upsert(c.releases, m.data)[0] };
    }
    case 'milestone': {
      if (m.data.campaign !== c.id) return c;
      return { ...c, milestones: upsert(c.milestones, m.data)[0] };
    }
    case 'campaign': {
      if (m.data.id !== c.id) return c;
      const { owner, title, description, goal_amount, currency, status, created_at, updated_at } = m.data;
      return { ...c, owner, title, description, goal_amount, currency, status, created_at, updated_at };
    }
    default:
      return c;
  }
}

/** Replaces the item with v's id, or puts v first; reports whether it was new. */
function upsert<T extends { id: number }>(list: T[], v: T): [T[], boolean] {
  const i = list.findIndex((x) => x.id === v.id);
  if (i < 0) return [[v, ...list], true];
  const next = list.slice();
  next[i] = v;
  return [next, false];
}
