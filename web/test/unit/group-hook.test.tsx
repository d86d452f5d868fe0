// @vitest-environment happy-dom
// useGroup, rendered with react-dom against a real herald with an app
// namespace: the provider's token sources, events, publish, sharing.
import { createRoot, type Root } from 'react-dom/client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { GroupEvent } from '@herald/client';
import { HeraldProvider, useGroup, type GroupState, type HeraldConfig } from '../../src/hooks';
import type { Herald } from '../setup/herald';
import { countingTransport, mintToken, nowSec, startAppHerald, until } from './helpers';

let h: Herald;
const transport = countingTransport();
let dispose: () => Promise<void>;
let root: Root | null = null;

beforeAll(async () => {
  ({ h, dispose } = await startAppHerald(inject('heraldBin')));
});
afterAll(() => dispose?.());
afterEach(async () => {
  root?.unmount();
  root = null;
  // A shared client closes a moment after its last user: each test starts
  // once the previous one's connections have.
  await until(() => transport.open === 0, 5000, "the previous test's connections closed");
});

function render(cfg: HeraldConfig, node: React.ReactNode) {
  const el = document.createElement('div');
  document.body.appendChild(el);
  root = createRoot(el);
  root.render(<HeraldProvider config={cfg}>{node}</HeraldProvider>);
}

describe('useGroup', () => {
  it('subscribes with the provider’s tokens, shares the subscription, publishes and receives', async () => {
    const asked: string[] = [];
    const cfg: HeraldConfig = {
      base: h.url,
      auth: null,
      transport,
      getConnectionToken: async () => mintToken({ sub: 'hooked', exp: nowSec() + 600 }),
      getSubscriptionToken: async (group) => {
        asked.push(group);
        return mintToken({ sub: 'hooked', channel: group, exp: nowSec() + 600 });
      },
    };
    let a: GroupState | null = null;
    let b: GroupState | null = null;
    const seen: GroupEvent[] = [];
    function Chat() {
      a = useGroup('chat:hooks', { onEvent: (e) => seen.push(e) });
      b = useGroup('chat:hooks');
      return null;
    }
    render(cfg, <Chat />);
    await until(() => a?.isSubscribed === true && b?.isSubscribed === true, 10_000, 'subscribed');
    expect(a!.error).toBeNull();
    // One subscription for both hooks, with the token: the publish would be
    // refused (forbidden) in a group not joined with one.
    await expect(a!.publish('message', { text: 'hello' })).resolves.toBeUndefined();
    await until(() => a?.lastEvent != null && b?.lastEvent != null, 5000, 'the event in both hooks');
    expect(a!.lastEvent).toMatchObject({ type: 'message', data: { text: 'hello' }, group: 'chat:hooks' });
    expect(b!.lastEvent).toEqual(a!.lastEvent);
    expect(seen).toHaveLength(1);
    expect(asked).toEqual(['chat:hooks']);
    expect(a!.isConnected).toBe(true);
  });

  it('reports a group it may not join', async () => {
    const cfg: HeraldConfig = {
      base: h.url,
      auth: null,
      transport,
      backoff: { baseMs: 50, maxMs: 100 },
      getConnectionToken: async () => mintToken({ sub: 'hooked', exp: nowSec() + 600 }),
    };
    let g: GroupState | null = null;
    function Chat() {
      g = useGroup('chat:private', { getToken: async () => 'not-a-token' });
      return null;
    }
    render(cfg, <Chat />);
    // Refused at once when subscribed on an open connection; joined when the
    // connection opens, retried (a fresh token may do) a few times.
    await until(() => g?.error?.willRetry === false, 10_000, 'the refusal');
    expect(g!.error).toMatchObject({ group: 'chat:private', code: 'invalid_token' });
    expect(g!.isSubscribed).toBe(false);
  });
});
