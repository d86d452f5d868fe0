// The SSE transport's reading of an event stream, with a scripted
// EventSource: what the server sends is played event by event, so the test
// can tell a stream that ended on a not_found error (the WebSocket's 4404)
// from one that failed. (The browser tests run it against herald.)
import { describe, expect, it } from 'vitest';
import { CloseCode, HeraldClient, sseTransport, type CloseInfo, type EventSourceLike, type ServerMessage } from '@herald/client';

type Listener = (ev: { data: string; lastEventId?: string }) => void;

class ScriptedEventSource implements EventSourceLike {
  static made: ScriptedEventSource[] = [];
  readyState = 0;
  onopen: ((ev: never) => unknown) | null = null;
  onerror: ((ev: never) => unknown) | null = null;
  closed = false;
  private readonly listeners = new Map<string, Listener[]>();

  constructor(readonly url: string) {
    ScriptedEventSource.made.push(this);
  }

  addEventListener(type: string, fn: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.(undefined as never);
  }

  /**
   * The server sends `event: type` with `data`. As in a browser, an `error`
   * message also reaches onerror, set before the listeners were added.
   */
  send(type: string, data: unknown, id = ''): void {
    const ev = { data: JSON.stringify(data), lastEventId: id };
    if (type === 'error') this.onerror?.(ev as never);
    for (const fn of this.listeners.get(type) ?? []) fn(ev);
  }

  /** The stream fails (a network error, or an answer that is not 200). */
  fail(): void {
    this.onerror?.(undefined as never);
  }
}

function room() {
  ScriptedEventSource.made = [];
  const c = new HeraldClient({ base: 'http://127.0.0.1:9', url: '/ws/campaign/5/', transport: sseTransport(ScriptedEventSource) });
  const messages: ServerMessage[] = [];
  const closes: CloseInfo[] = [];
  c.on('message', (m) => messages.push(m));
  c.on('close', (i) => closes.push(i));
  c.connect();
  const es = ScriptedEventSource.made[0]!;
  es.open();
  return { c, es, messages, closes };
}

const campaign = {
  id: 5,
  owner: { id: 1, username: 'alice' },
  title: 'Renamed',
  description: '',
  goal_amount: '10.00',
  raised_amount: '0.00',
  currency: 'USD',
  status: 'closed',
  contributions_count: 0,
  created_at: '2026-01-01T00:00:00Z',
  updated_at: '2026-01-02T00:00:00Z',
};

describe('sseTransport', () => {
  it('hands a campaign event over like any, and ends on a not_found error as a WebSocket closed with 4404', () => {
    const { c, es, messages, closes } = room();
    expect(es.url).toBe('http://127.0.0.1:9/sse/campaign/5/');
    es.send('campaign', campaign, 'campaign_5:e:3');
    expect(messages).toEqual([{ type: 'campaign', data: campaign }]);
    expect(c.positions.get('campaign_5')).toMatchObject({ epoch: 'e', offset: 3 });

    es.send('error', { code: 'not_found', message: 'campaign 5 does not exist or is not visible to you' });
    expect(messages.at(-1)).toEqual({ type: 'error', data: { code: 'not_found', message: 'campaign 5 does not exist or is not visible to you' } });
    expect(es.closed).toBe(true);
    expect(closes).toEqual([{ code: CloseCode.NotFound, reason: 'campaign not found', wasOpen: true, willReconnect: false, delayMs: null }]);
    expect(c.state).toBe('closed');
    expect(ScriptedEventSource.made).toHaveLength(1);
  });

  it('reconnects a stream that failed, and not on an error message of another code', () => {
    const { c, es, messages, closes } = room();
    es.send('error', { code: 'rate_limited', message: 'slow down' });
    expect(messages).toEqual([{ type: 'error', data: { code: 'rate_limited', message: 'slow down' } }]);
    expect(es.closed).toBe(false);
    expect(closes).toEqual([]);
    es.fail();
    expect(closes).toMatchObject([{ code: 1006, willReconnect: true }]);
    expect(c.state).toBe('reconnecting');
    c.close();
  });
});
