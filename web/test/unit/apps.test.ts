// Other apps' clients against a real herald with a namespace of their own
// (chat:<name>, joined and published to with the app's tokens): connection
// tokens, subscription tokens renewed before they expire, publish, and what
// happens when a token runs out.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  AckRejectedError,
  type GroupEvent,
  type HeraldClient,
  type HeraldClientOptions,
  type SubscriptionErrorInfo,
} from '@herald/client';
import type { Herald } from '../setup/herald';
import { client, cuttableTransport, mintToken, next, nowSec, record, startAppHerald, until } from './helpers';

let h: Herald;
let dispose: () => Promise<void>;

beforeAll(async () => {
  ({ h, dispose } = await startAppHerald(inject('heraldBin')));
});
afterAll(() => dispose?.());

/** A connection token for user sub, valid for ten minutes. */
const connectionToken = (sub: string) => mintToken({ sub, exp: nowSec() + 600 });
/** A subscription token for user sub and group, valid for `ttl` seconds. */
const subscriptionToken = (sub: string, group: string, ttl: number) => mintToken({ sub, channel: group, exp: nowSec() + ttl });

/** A v2 client of /ws/ connected as the app's user sub. */
function appClient(sub: string, o: Partial<HeraldClientOptions> = {}): HeraldClient {
  return client(h.url, { url: '/ws/', version: 2, getConnectionToken: async () => connectionToken(sub), ...o });
}

/** The group events a client receives in group, in order. */
function eventsOf(c: HeraldClient, group: string): GroupEvent[] {
  const got: GroupEvent[] = [];
  c.on('event', (e) => {
    if (e.group === group) got.push(e);
  });
  return got;
}

/** A member of group (a long-lived token) that publishes to it. */
async function publisher(group: string): Promise<HeraldClient> {
  const p = appClient('publisher');
  p.connect();
  await next(p, 'open');
  await p.subscribe(group, { token: subscriptionToken('publisher', group, 600) });
  return p;
}

const numbers = (evs: GroupEvent[]) => evs.map((e) => (e.data as { n: number }).n);

describe('apps’ groups with tokens', () => {
  it('subscribes with a token, receives a publish, and renews the token before it expires', async () => {
    const group = 'chat:renewed';
    const issued: { at: number; exp: number }[] = [];
    const c = appClient('u1', {
      getSubscriptionToken: async (g) => {
        const exp = nowSec() + 4;
        issued.push({ at: Date.now(), exp });
        return mintToken({ sub: 'u1', channel: g, exp });
      },
    });
    const ended = record(c, 'unsubscribed', 'subscriptionError');
    const got = eventsOf(c, group);
    c.connect();
    await next(c, 'open');
    const joined = next(c, 'subscribed', (m) => m.data.group === group);
    await c.subscribe(group);
    expect((await joined).data).toMatchObject({ group, recovered: true });
    expect(c.subscriptions).toEqual([group]);

    const p = await publisher(group);
    await p.publish(group, 'message', { n: 1 });
    await until(() => got.length === 1, 5000, 'the first publish');
    expect(got[0]).toMatchObject({ type: 'message', group, data: { n: 1 } });

    // Past the first token's expiry, and that of the one renewing it.
    const first = issued[0]!;
    await until(() => issued.length >= 3 && Date.now() > first.exp * 1000 + 500, 15_000, 'two renewals past the first expiry');
    // Each renewal came before the token it replaced ran out.
    for (let i = 1; i < issued.length; i++) expect(issued[i]!.at).toBeLessThan(issued[i - 1]!.exp * 1000);
    await p.publish(group, 'message', { n: 2 });
    await until(() => got.length === 2, 5000, 'a publish after the first token expired');
    expect(numbers(got)).toEqual([1, 2]);
    expect(ended).toEqual([]);
    p.close();
    c.close();
  });

  it('without a token source, the subscription ends when its token does: unsubscribed token_expired', async () => {
    const group = 'chat:expires';
    const c = appClient('u2');
    const got = eventsOf(c, group);
    const errors = record(c, 'subscriptionError');
    c.connect();
    await next(c, 'open');
    await c.subscribe(group, { token: subscriptionToken('u2', group, 3) });
    const p = await publisher(group);
    await p.publish(group, 'message', { n: 1 });
    await until(() => got.length === 1, 5000, 'the publish before the expiry');

    const ended = await next(c, 'unsubscribed', (m) => m.data.group === group, 10_000);
    expect(ended.data.code).toBe('token_expired');
    expect(errors.map(({ ev }) => ev)).toEqual([
      expect.objectContaining({ group, code: 'token_expired', failures: 1, willRetry: false, delayMs: null }),
    ]);
    expect(c.subscriptions).toEqual([]);

    // Out of the group: a later publish reaches its members, not this client.
    const seen = eventsOf(p, group);
    await p.publish(group, 'message', { n: 2 });
    await until(() => seen.length === 1, 5000, 'the publisher’s own copy');
    expect(numbers(got)).toEqual([1]);
    p.close();
    c.close();
  });

  it('after a late renewal, subscribes again from its last position: nothing is lost', async () => {
    const group = 'chat:late';
    let gate!: () => void;
    const opened = new Promise<void>((r) => (gate = r));
    let calls = 0;
    const c = appClient('u3', {
      backoff: { baseMs: 50, maxMs: 100 },
      getSubscriptionToken: async (g) => {
        calls++;
        // The renewal (and every later call) waits for the test: it comes
        // too late, and the server ends the subscription first.
        if (calls > 1) await opened;
        return mintToken({ sub: 'u3', channel: g, exp: nowSec() + 3 });
      },
    });
    const got = eventsOf(c, group);
    const errors = record(c, 'subscriptionError');
    c.connect();
    await next(c, 'open');
    await c.subscribe(group);
    const p = await publisher(group);
    await p.publish(group, 'message', { n: 1 });
    await until(() => got.length === 1, 5000, 'the first publish');

    const ended = await next(c, 'unsubscribed', (m) => m.data.group === group, 10_000);
    expect(ended.data.code).toBe('token_expired');
    // Missed while out of the group:
    await p.publish(group, 'message', { n: 2 });
    await p.publish(group, 'message', { n: 3 });
    const back = next(c, 'subscribed', (m) => m.data.group === group);
    gate();
    expect((await back).data).toMatchObject({ group, recovered: true });
    await p.publish(group, 'message', { n: 4 });
    await until(() => got.length >= 4, 5000, 'the replay and the live event');
    expect(numbers(got)).toEqual([1, 2, 3, 4]);
    expect(errors.map(({ ev }) => ev)).toContainEqual(expect.objectContaining({ group, code: 'token_expired', willRetry: true }));
    expect(c.subscriptions).toEqual([group]);
    p.close();
    c.close();
  });

  it('gives a group up after a bounded number of token failures in a row, backing off between them', async () => {
    const group = 'chat:refused';
    let calls = 0;
    const c = appClient('u4', {
      backoff: { baseMs: 50, maxMs: 100 },
      subscriptionRetries: 3,
      stableAfterMs: 60_000, // no failure run starts over in this test
      getSubscriptionToken: async (g) => (++calls === 1 ? subscriptionToken('u4', g, 3) : 'not-a-token'),
    });
    const errors = record(c, 'subscriptionError');
    c.connect();
    await next(c, 'open');
    await c.subscribe(group);
    await until(() => errors.some(({ ev }) => !(ev as SubscriptionErrorInfo).willRetry), 15_000, 'giving up');
    const evs = errors.map(({ ev }) => ev as SubscriptionErrorInfo);
    expect(evs.map((e) => e.failures)).toEqual([1, 2, 3, 4]);
    expect(evs.map((e) => e.willRetry)).toEqual([true, true, true, false]);
    for (const e of evs.slice(0, 3)) expect(e.delayMs).toBeLessThan(100);
    expect(evs.map((e) => e.code)).toContain('invalid_token');
    expect(c.subscriptions).toEqual([]);
    expect(calls).toBeLessThanOrEqual(5); // the join, the renewal, three retries
    c.close();
  });

  it('joins again with fresh tokens after a lost connection, from where it stood', async () => {
    const group = 'chat:resumed';
    const { transport, cut } = cuttableTransport();
    let connects = 0;
    let subTokens = 0;
    const c = appClient('u5', {
      transport,
      backoff: { baseMs: 300, maxMs: 300, random: () => 0.99 },
      getConnectionToken: async () => {
        connects++;
        return connectionToken('u5');
      },
      getSubscriptionToken: async (g) => {
        subTokens++;
        return subscriptionToken('u5', g, 600);
      },
    });
    const got = eventsOf(c, group);
    c.connect();
    // Before the connection opens: the call settles with the join on open,
    // for which the one token is fetched.
    expect(c.state).toBe('connecting');
    await c.subscribe(group);
    expect(subTokens).toBe(1);
    const p = await publisher(group);
    await p.publish(group, 'message', { n: 1 });
    await until(() => got.length === 1, 5000, 'the first publish');

    const resync = next(c, 'resync');
    cut();
    await until(() => c.state === 'reconnecting', 2000, 'the loss');
    await p.publish(group, 'message', { n: 2 });
    await p.publish(group, 'message', { n: 3 });
    expect(await resync).toEqual({ recovered: true, groups: { [group]: true } });
    await until(() => got.length === 3, 5000, 'the replay');
    expect(numbers(got)).toEqual([1, 2, 3]);
    expect(connects).toBe(2);
    expect(subTokens).toBe(2);
    p.close();
    c.close();
  });

  it('asks for a new connection token on each attempt: an expired one is refused, the next one opens', async () => {
    const tokens = [mintToken({ sub: 'u6', exp: nowSec() - 120 }), connectionToken('u6')];
    let calls = 0;
    const c = client(h.url, {
      url: '/ws/',
      version: 2,
      backoff: { baseMs: 50, maxMs: 50 },
      getConnectionToken: async () => tokens[Math.min(calls++, 1)]!,
    });
    const closes = record(c, 'close');
    c.connect();
    await next(c, 'open');
    expect(calls).toBe(2);
    expect(closes.map(({ ev }) => ev)).toEqual([expect.objectContaining({ wasOpen: false, willReconnect: true })]);
    // The connection is u6's: a subscription token for u6 is accepted, one for someone else is not.
    await c.subscribe('chat:mine', { token: subscriptionToken('u6', 'chat:mine', 600) });
    await expect(c.subscribe('chat:theirs', { token: subscriptionToken('u7', 'chat:theirs', 600) })).rejects.toMatchObject({
      code: 'forbidden',
    });
    expect(c.subscriptions).toEqual(['chat:mine']);
    c.close();
  });

  it('publish answers ack, or the server’s refusal', async () => {
    const c = appClient('u8');
    c.connect();
    await next(c, 'open');
    // Not a member: the chat namespace lets token holders publish.
    const refused = c.publish('chat:closed', 'message', { n: 1 });
    await expect(refused).rejects.toBeInstanceOf(AckRejectedError);
    await expect(refused).rejects.toMatchObject({ code: 'forbidden' });
    await expect(c.publish('nowhere:1', 'message', {})).rejects.toMatchObject({ code: 'invalid_group' });
    await c.subscribe('chat:open', { token: subscriptionToken('u8', 'chat:open', 600) });
    const own = next(c, 'event', (e) => e.group === 'chat:open');
    await expect(c.publish('chat:open', 'note', { text: 'hi' })).resolves.toBeUndefined();
    expect(await own).toMatchObject({ type: 'note', data: { text: 'hi' }, group: 'chat:open', offset: 1 });
    c.close();
  });
});
