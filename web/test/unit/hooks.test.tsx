// @vitest-environment happy-dom
// The React hooks, rendered with react-dom against a real herald.
import { useCallback, useState } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Campaign, CampaignDetail, Contribution, ServerMessage } from '@herald/client';
import {
  HeraldProvider,
  useApplicationWebSocket,
  useCampaignRoom,
  usePresence,
  useWebSocket,
  type HeraldConfig,
  type UseWebSocketResult,
} from '../../src/hooks';
import { ApiUser, Herald } from '../setup/herald';
import { nodeTransport, until } from './helpers';

let h: Herald;
let cfg: HeraldConfig;
let root: Root | null = null;
let dave: ApiUser;

beforeAll(async () => {
  h = await Herald.start({ bin: inject('heraldBin') });
  cfg = { base: h.url, auth: null, transport: nodeTransport };
  dave = await ApiUser.signIn(h.url, 'dave');
});
afterAll(() => h?.dispose());
afterEach(async () => {
  root?.unmount();
  root = null;
  localStorage.clear();
  await new Promise((r) => setTimeout(r, 200)); // shared clients close 100 ms after their last user
});

function render(node: React.ReactNode) {
  const el = document.createElement('div');
  document.body.appendChild(el);
  root = createRoot(el);
  root.render(<HeraldProvider config={cfg}>{node}</HeraldProvider>);
}

describe('useWebSocket (the seeds’ shape)', () => {
  it('delivers every frame to onMessage even when they arrive back to back', async () => {
    const frames: ServerMessage[] = [];
    let result: UseWebSocketResult | null = null;
    let renders = 0;
    function Probe() {
      result = useWebSocket('/ws/campaign/2/', { onMessage: (_ev, m) => m && frames.push(m) });
      renders++;
      return null;
    }
    render(<Probe />);
    await until(() => frames.length === 1 && result?.isConnected === true, 10_000, 'the snapshot');
    expect(frames[0]?.type).toBe('campaign_data');

    const posted = await Promise.all(
      ['1.00', '2.00', '3.00', '4.00', '5.00'].map((amount) => dave.post<Contribution>('/api/campaigns/2/contributions/', { amount })),
    );
    await until(() => frames.length === 6, 10_000, 'five contributions');
    const got = frames.slice(1).map((f) => (f.type === 'contribution' ? f.data.id : -1));
    expect(got.sort()).toEqual(posted.map((p) => p.id).sort());
    // lastMessage is a MessageEvent whose data is the frame's JSON, as in the seed.
    await until(() => result?.lastMessage != null && JSON.parse(result.lastMessage.data).type === 'contribution', 5000, 'lastMessage');
    expect(result!.error).toBeNull();
    expect(renders).toBeGreaterThan(1);
  });

  it('reconnect() works and sendMessage reports a closed socket like the seed', async () => {
    let snaps = 0;
    let result: UseWebSocketResult | null = null;
    function Probe() {
      result = useWebSocket('/ws/campaign/1/', { onMessage: (_e, m) => m?.type === 'campaign_data' && snaps++ });
      return null;
    }
    render(<Probe />);
    await until(() => snaps === 1 && result?.isConnected === true, 10_000, 'connected');
    result!.reconnect();
    await until(() => snaps === 2 && result?.isConnected === true, 10_000, 'reconnected');

    let closed: UseWebSocketResult | null = null;
    function Off() {
      closed = useWebSocket('/ws/campaign/1/', { enabled: false });
      return null;
    }
    root?.render(
      <HeraldProvider config={cfg}>
        <Off />
      </HeraldProvider>,
    );
    await until(() => closed !== null, 5000, 'render');
    closed!.sendMessage({ type: 'comment', data: { id: 1 } });
    await until(() => closed?.error === 'WebSocket is not connected', 5000, 'the error');
  });
});

describe('useCampaignRoom and usePresence', () => {
  it('keep the campaign live on one shared connection; presence stays null until the server sends it', async () => {
    let room: ReturnType<typeof useCampaignRoom> | null = null;
    let watching: number | null | undefined;
    const toasts: string[] = [];
    function Dashboard() {
      room = useCampaignRoom(4, { onMessage: (m) => toasts.push(m.type) });
      watching = usePresence(4);
      return null;
    }
    render(<Dashboard />);
    await until(() => room?.campaign != null && room.isConnected, 10_000, 'the snapshot');
    const before = room!.campaign!.raised_amount;
    const count = room!.campaign!.contributions_count;
    await dave.post('/api/campaigns/4/contributions/', { amount: '10.50' });
    await until(() => room!.campaign!.contributions_count === count + 1, 5000, 'the contribution');
    expect(Number(room!.campaign!.raised_amount)).toBeCloseTo(Number(before) + 10.5, 2);
    // The count comes at most once a second: on a slow machine it may
    // already have come, and then usePresence shows it.
    expect(toasts.filter((t) => t !== 'presence')).toEqual(['campaign_data', 'subscribed', 'contribution']);
    if (toasts.includes('presence')) {
      expect(watching).toBeGreaterThanOrEqual(1);
    } else {
      expect(watching).toBeNull();
    }
  });
});

/**
 * Renders a page showing campaign id with useCampaignRoom, once it has the
 * campaign's snapshot; the result is what the hook returned last.
 */
async function renderRoom(id: number): Promise<() => ReturnType<typeof useCampaignRoom>> {
  let room: ReturnType<typeof useCampaignRoom> | null = null;
  function Dashboard() {
    room = useCampaignRoom(id);
    return null;
  }
  render(<Dashboard />);
  await until(() => room?.campaign != null && room.isConnected, 10_000, 'the snapshot');
  return () => room!;
}

describe('useCampaignRoom: the campaign itself', () => {
  it('shows the owner’s edits live, and drops the campaign when it is made a draft again', async () => {
    const made = await dave.post<Campaign>('/api/campaigns/', { title: 'Before', goal_amount: '40.00', status: 'active' });
    const room = await renderRoom(made.id);
    await dave.post(`/api/campaigns/${made.id}/contributions/`, { amount: '4.00' });
    await until(() => room().campaign!.raised_amount === '4.00', 5000, 'the contribution');
    await dave.patch(`/api/campaigns/${made.id}/`, { title: 'After', goal_amount: '80.00', status: 'closed' });
    await until(() => room().campaign!.title === 'After', 5000, 'the edit');
    expect(room().campaign).toMatchObject({ goal_amount: '80.00', status: 'closed', raised_amount: '4.00', contributions_count: 1 });
    expect(room().campaign!.contributions).toHaveLength(1);

    await dave.patch(`/api/campaigns/${made.id}/`, { status: 'draft' });
    await until(() => room().state === 'closed', 5000, 'the room closed');
    expect(room().campaign).toBeNull();
    expect(room().error?.code).toBe('not_found');
    room().seed(await dave.get<CampaignDetail>(`/api/campaigns/${made.id}/`)); // a REST answer read before, arriving late
    expect(room().campaign).toBeNull();
  });

  it('drops a deleted campaign, and a REST answer read before does not bring it back', async () => {
    const made = await dave.post<Campaign>('/api/campaigns/', { title: 'Short-lived', goal_amount: '10.00', status: 'active' });
    const room = await renderRoom(made.id);
    const before = await dave.get<CampaignDetail>(`/api/campaigns/${made.id}/`);
    await dave.call('DELETE', `/api/campaigns/${made.id}/`);
    await until(() => room().state === 'closed', 5000, 'the room closed');
    expect(room().campaign).toBeNull();
    expect(room().error?.code).toBe('not_found');
    room().seed(before);
    expect(room().campaign).toBeNull();
  });
});

describe('useApplicationWebSocket (the seeds’ shape)', () => {
  it('connects with the seeds’ localStorage token and hands every event to onMessage', async () => {
    const bob = await ApiUser.signIn(h.url, 'bob');
    localStorage.setItem('access_token', bob.access);
    const got: { type: string; data: { applicant?: string } }[] = [];
    let connected = false;
    function Manager() {
      const [, force] = useState(0);
      const onMessage = useCallback((data: { type: string; data: { applicant?: string } }) => {
        got.push(data);
        force((n) => n + 1);
      }, []);
      connected = useApplicationWebSocket(onMessage);
      return null;
    }
    render(<Manager />);
    await until(() => connected, 10_000, 'connected');
    const quests = await bob.get<{ results: { id: number; title: string }[] }>(`/api/quests/?creator=${bob.id}`);
    const carol = await ApiUser.signIn(h.url, 'carol');
    const q = quests.results.find((x) => x.title === 'Photograph the harbour wall')!;
    await carol.post(`/api/quests/${q.id}/applications/`, { message: 'Me!' });
    await until(() => got.length === 1, 5000, 'new_application');
    expect(got[0]).toMatchObject({ type: 'new_application', data: { applicant: 'carol' } });
  });
});
