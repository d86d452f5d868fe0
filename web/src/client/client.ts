// HeraldClient: one real-time endpoint, kept connected.
//
//   const c = new HeraldClient({ url: '/ws/campaign/42/' });
//   c.on('contribution', (m) => console.log(m.data.amount));
//   c.on('resync', () => reloadThroughRest());
//   c.connect();
//
// It reconnects with full-jitter exponential backoff (reset once a
// connection has stayed up), renews credentials before reconnecting, tracks
// v2 stream positions for resume, can fall back to Server-Sent Events, and
// correlates acknowledgements of client messages once the server sends them.
// On v2 it joins further groups (with the app's subscription tokens, renewed
// before they expire) and publishes to them. See README.md in this folder.

import { Backoff, type BackoffOptions } from './backoff';
import type { AuthProvider } from './auth';
import {
  CloseCode,
  formatPositions,
  isServerMessage,
  parsePositions,
  positionOf,
  type ClientMessage,
  type ErrorData,
  type PublishData,
  type ServerMessage,
  type ServerMessageType,
  type StreamPosition,
  type SubscribeMessage,
  type UnsubscribedData,
} from './protocol';
import { renewalDelay } from './renewal';
import { webSocketTransport, type Transport, type TransportConn } from './transport';

export type ConnectionState =
  /** Not started (before connect()). */
  | 'idle'
  /** First attempt in progress. */
  | 'connecting'
  /** Connected: events flow. */
  | 'open'
  /** Lost the connection; waiting or retrying. */
  | 'reconnecting'
  /** Stopped: close() was called, the server refused for good, or the attempts ran out. */
  | 'closed';

export interface OpenInfo {
  /** This is not the first connection of this client. */
  reconnect: boolean;
  transport: Transport['kind'];
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** The connection had opened (false: the attempt failed). */
  wasOpen: boolean;
  willReconnect: boolean;
  /** Wait before the next attempt, null when none is planned. */
  delayMs: number | null;
}

/**
 * Emitted after a reconnect when the client may have missed events:
 * `recovered: false` means "reload what you show through REST". With v1
 * (no resume) every reconnect is unrecovered; with a resume strategy it is
 * the server's answer.
 */
export interface ResyncInfo {
  recovered: boolean;
  /**
   * The groups the client resumed and whether each was recovered: every
   * group it had joined, quiet ones included (the server tells a group's
   * position when the client joins it).
   */
  groups: Record<string, boolean>;
}

/** A frame with a type this client does not know (future v2 messages, apps' events). */
export interface UnknownFrame {
  type: string;
  data?: unknown;
  [k: string]: unknown;
}

/**
 * v2: an event of a group, as every frame that carries a position is:
 * herald's own events and those an app or a client published, whatever
 * their type.
 */
export interface GroupEvent {
  type: string;
  data: unknown;
  group: string;
  offset: number;
  epoch: string;
}

/**
 * A group joined with subscribe() could not be (re)joined or renewed, or
 * the server ended its subscription (`unsubscribed`). `willRetry` says the
 * client tries again after `delayMs` with a fresh token; otherwise it has
 * let the group go (subscribe() again to rejoin it from its last position).
 */
export interface SubscriptionErrorInfo {
  group: string;
  /**
   * The server's code (token_expired, invalid_token, forbidden, …), or the
   * client's: `token_unavailable` (the token callback failed), `timeout`.
   */
  code: string;
  message: string;
  /** Failures in a row for this group, this one included. */
  failures: number;
  willRetry: boolean;
  delayMs: number | null;
}

export type ClientEventMap = { [K in ServerMessageType]: ServerMessage<K> } & {
  /** Every known server message, in arrival order. */
  message: ServerMessage;
  /** The text of every frame, before any other event of it. */
  raw: string;
  unknown: UnknownFrame;
  state: ConnectionState;
  open: OpenInfo;
  close: CloseInfo;
  resync: ResyncInfo;
  /** v2: every frame carrying a group position (see GroupEvent), after its own event. */
  event: GroupEvent;
  subscriptionError: SubscriptionErrorInfo;
};

export type Positions = ReadonlyMap<string, StreamPosition>;

/**
 * How a reconnecting client asks to resume from its last positions, and
 * how it recognizes the server's answers. herald's (v2 and SSE):
 * `?resume=group:epoch:offset,…`, answered per group by
 * {"type":"subscribed","data":{"group","recovered","epoch","offset"}} after
 * the replay.
 */
export interface ResumeStrategy {
  /** Query parameters to add to a reconnect's URL. */
  query?(positions: Positions): Record<string, string>;
  /** A message to send as soon as a reconnect opens. */
  message?(positions: Positions): ClientMessage | null;
  /** The groups whose answers to wait for. */
  groups(positions: Positions): string[];
  /**
   * The resume answer a frame carries, or undefined; with the position it
   * leaves the client at, when the server tells it.
   */
  answer(frame: UnknownFrame): { group: string; recovered: boolean; position?: StreamPosition } | undefined;
}

/** herald's resume: ?resume= with every known position, `subscribed` answers. */
export const heraldResume: ResumeStrategy = {
  query: (ps) => ({ resume: formatPositions(ps.values()) }),
  groups: (ps) => [...ps.keys()],
  answer(f) {
    if (f.type !== 'subscribed' || typeof f.data !== 'object' || f.data === null) return undefined;
    const d = f.data as { group?: unknown; recovered?: unknown; epoch?: unknown; offset?: unknown };
    if (typeof d.group !== 'string') return undefined;
    const position = positionOf(d as Partial<StreamPosition>) ?? undefined;
    return { group: d.group, recovered: d.recovered === true, position };
  },
};

/**
 * How acknowledgements of client messages look on the wire. herald v2: a
 * message with an "id" is answered by {"type":"ack","data":{"id"}} or by an
 * error whose data carries that id. v1 has none: sendWithAck() then rejects
 * with AckUnsupportedError rather than pretending.
 */
export interface AckCodec {
  /** The message to send, carrying correlation id `id`. */
  tag(msg: ClientMessage, id: string): ClientMessage;
  /** The acknowledgement a frame carries, or null if it carries none. */
  match(frame: UnknownFrame): { id: string; ok: boolean; error?: ErrorData } | null;
}

export const heraldAcks: AckCodec = {
  tag: (msg, id) => ({ ...msg, id }),
  match(f) {
    const d = f.data as { id?: unknown } | undefined;
    if (!d || typeof d !== 'object' || typeof d.id !== 'string') return null;
    if (f.type === 'ack') return { id: d.id, ok: true };
    if (f.type === 'error') return { id: d.id, ok: false, error: d as ErrorData };
    return null;
  },
};

export class AckUnsupportedError extends Error {
  constructor() {
    super('the server does not acknowledge client messages on this protocol version');
    this.name = 'AckUnsupportedError';
  }
}

/** The message may or may not have been processed (timeout or connection lost). */
export class AckLostError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'AckLostError';
  }
}

export class AckRejectedError extends Error {
  readonly code: string;
  constructor(err: ErrorData) {
    super(err.message);
    this.name = 'AckRejectedError';
    this.code = err.code;
  }
}

/** The subscription token source failed (its error is the cause). */
export class TokenUnavailableError extends Error {
  readonly group: string;
  constructor(group: string, cause: unknown) {
    super(`no subscription token for ${group}: ${errorText(cause)}`, { cause });
    this.name = 'TokenUnavailableError';
    this.group = group;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface HeraldClientOptions {
  /** Endpoint: "/ws/campaign/42/", or an absolute ws(s):// or http(s):// URL. */
  url: string;
  /** Base to resolve a relative url against (default: the page's location). */
  base?: string;
  /** 1: the seeds' protocol (default). 2: adds group/offset/epoch to every event. */
  version?: 1 | 2;
  auth?: AuthProvider;
  backoff?: BackoffOptions;
  /** Default: the global WebSocket. */
  transport?: Transport;
  /** Used after `fallbackAfter` WebSocket attempts in a row failed to open (e.g. sseTransport()). */
  fallback?: Transport | null;
  fallbackAfter?: number;
  /** Default: heraldResume for v2 (and SSE), none for v1. null: never resume. */
  resume?: ResumeStrategy | null;
  /** Default: heraldAcks for v2, none for v1. */
  acks?: AckCodec | null;
  /** A connection that stayed open this long resets the backoff (default 2 000 ms). */
  stableAfterMs?: number;
  /** An attempt that has not opened after this long is abandoned (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Close codes after which the client does not reconnect (default 4403, 4404). */
  terminalCodes?: readonly number[];
  /**
   * The app's connection token for the /ws/ (and /sse/) endpoint, sent as
   * ?token=; called before every attempt, so each reconnect gets a fresh
   * one. When it fails, the attempt counts as failed and the client backs
   * off. An empty string sends none.
   */
  getConnectionToken?: () => Promise<string>;
  /**
   * v2: the app's subscription token for a group, called whenever the
   * client joins one with subscribe() (unless a token is passed), joins it
   * again after a reconnect, or renews a token about to expire. An empty
   * string subscribes without one.
   */
  getSubscriptionToken?: SubscriptionTokenSource;
  /**
   * Failures in a row to renew or rejoin a group with a fresh token before
   * the client gives the group up (default 5). Retries back off as
   * reconnects do (`backoff`'s baseMs and maxMs).
   */
  subscriptionRetries?: number;
}

/** Where the app's subscription token for a group comes from (its backend). */
export type SubscriptionTokenSource = (group: string) => Promise<string>;

export interface SubscribeOptions {
  /** The subscription token for this join (default: from the token source, or none). */
  token?: string;
  /** This group's token source, instead of the client's getSubscriptionToken. */
  getToken?: SubscriptionTokenSource;
  /** How long to wait for the server's answer (default 10 000 ms). */
  timeoutMs?: number;
}

/** A group joined with subscribe(), and how its token is kept fresh. */
interface Subscription {
  /** The token the subscription rests on ("" or undefined: none). */
  token: string | undefined;
  getToken: SubscriptionTokenSource | undefined;
  /** The renewal, or the retry after a failure. */
  timer: ReturnType<typeof setTimeout> | null;
  backoff: Backoff;
  failures: number;
  /** Bumped by every join: only the latest one's outcome schedules anything. */
  seq: number;
  /** When the last join or renewal was acknowledged (0: never). */
  joinedAt: number;
  /** subscribe() calls made before the connection opened, settled by the join on open. */
  waiters: Set<{ settle: (err?: Error) => void }>;
}

/** Server refusals a fresh token may cure. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  'token_expired',
  'invalid_token',
  'forbidden',
  'internal_error',
  'rate_limited',
  'token_unavailable',
  'timeout',
]);

type Listener<T> = (ev: T) => void;

/** Absolute ws(s):// URL of an endpoint. */
export function endpointURL(url: string, base?: string): URL {
  const loc = (globalThis as { location?: { href: string } }).location;
  const u = new URL(url, base ?? loc?.href ?? 'http://localhost/');
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u;
}

export class HeraldClient {
  private readonly opts: HeraldClientOptions;
  private readonly listeners = new Map<keyof ClientEventMap, Set<Listener<never>>>();
  private readonly backoff: Backoff;
  private readonly primary: Transport;
  private readonly positionsMap = new Map<string, StreamPosition>();
  private readonly pendingAcks = new Map<
    string,
    { resolve: () => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >();
  private stateValue: ConnectionState = 'idle';
  private conn: TransportConn | null = null;
  private connTransport: Transport | null = null;
  private generation = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private openedAt = 0;
  private everOpened = false;
  private suspectExpired = false;
  private wsFailures = 0;
  private fallbackRounds = 0;
  private ackSeq = 0;
  private awaitingResume: { groups: Map<string, boolean>; left: Set<string>; timer: ReturnType<typeof setTimeout> } | null =
    null;
  private resumeGroups: string[] = [];
  /** The positions the current attempt resumes from. */
  private resumeFrom: Positions = new Map();
  /** Groups joined with subscribe(), joined again after every reconnect. */
  private readonly subs = new Map<string, Subscription>();
  /** Groups the client left (or the server ended): not resumed by a reconnect. */
  private readonly leftGroups = new Set<string>();
  private lastCloseValue: CloseInfo | null = null;
  private readonly onOnline = () => {
    if (this.stateValue === 'reconnecting' && this.retryTimer) this.retryNow();
  };

  constructor(opts: HeraldClientOptions) {
    const v2 = opts.version === 2;
    opts = { ...opts };
    if (opts.resume === undefined) opts.resume = v2 ? heraldResume : null;
    if (opts.acks === undefined) opts.acks = v2 ? heraldAcks : null;
    this.opts = opts;
    this.backoff = new Backoff(opts.backoff);
    this.primary = opts.transport ?? webSocketTransport();
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this.stateValue;
  }

  get isConnected(): boolean {
    return this.stateValue === 'open';
  }

  /** Why the last connection or attempt ended. */
  get lastClose(): CloseInfo | null {
    return this.lastCloseValue;
  }

  /** The last v2 position seen in each group. */
  get positions(): Positions {
    return this.positionsMap;
  }

  /** Whether sendWithAck() can be used. */
  get supportsAcks(): boolean {
    return this.opts.acks != null;
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof ClientEventMap>(type: K, fn: Listener<ClientEventMap[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(fn as Listener<never>);
    return () => {
      set.delete(fn as Listener<never>);
    };
  }

  private emit<K extends keyof ClientEventMap>(type: K, ev: ClientEventMap[K]): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as Listener<ClientEventMap[K]>)(ev);
      } catch (err) {
        // A listener's bug must not break the connection or other listeners.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  private setState(s: ConnectionState): void {
    if (s === this.stateValue) return;
    this.stateValue = s;
    this.emit('state', s);
  }

  /** Starts connecting (no-op when already started). */
  connect(): void {
    if (this.stateValue !== 'idle' && this.stateValue !== 'closed') return;
    const w = globalThis as { addEventListener?: (t: string, f: () => void) => void };
    w.addEventListener?.('online', this.onOnline);
    this.backoff.reset();
    void this.attempt();
  }

  /** Drops the current connection (if any) and connects again now. */
  reconnect(): void {
    if (this.stateValue === 'idle' || this.stateValue === 'closed') {
      this.connect();
      return;
    }
    this.backoff.reset();
    this.retryNow();
  }

  /** Stops for good: closes the connection, cancels retries. */
  close(): void {
    const w = globalThis as { removeEventListener?: (t: string, f: () => void) => void };
    w.removeEventListener?.('online', this.onOnline);
    this.clearTimers();
    this.clearSubTimers();
    this.generation++;
    const conn = this.conn;
    this.conn = null;
    conn?.close(CloseCode.Normal, 'client closed');
    this.failAcks('the client was closed');
    for (const s of this.subs.values()) for (const w of [...s.waiters]) w.settle(new AckLostError('the client was closed'));
    this.setState('closed');
  }

  /**
   * Sends a message (JSON-encoded). Returns false when not connected or the
   * transport cannot send (SSE); nothing is queued.
   */
  send(msg: ClientMessage): boolean {
    if (this.stateValue !== 'open' || !this.conn || !this.connTransport?.canSend) return false;
    return this.conn.send(JSON.stringify(msg));
  }

  /**
   * Sends a message and resolves when the server acknowledges it, rejects
   * with AckRejectedError when the server refuses it, AckLostError on
   * timeout or disconnect, AckUnsupportedError when the server has no
   * acknowledgements (herald v1).
   */
  sendWithAck(msg: ClientMessage, timeoutMs = 10_000): Promise<void> {
    const codec = this.opts.acks;
    if (!codec) return Promise.reject(new AckUnsupportedError());
    const id = `c${++this.ackSeq}`;
    return new Promise<void>((resolve, reject) => {
      if (!this.send(codec.tag(msg, id))) {
        reject(new AckLostError('not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pendingAcks.delete(id);
        reject(new AckLostError('no acknowledgement in time'));
      }, timeoutMs);
      this.pendingAcks.set(id, { resolve, reject, timer });
    });
  }

  private failAcks(reason: string): void {
    for (const [id, p] of this.pendingAcks) {
      clearTimeout(p.timer);
      p.reject(new AckLostError(reason));
      this.pendingAcks.delete(id);
    }
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.retryTimer = null;
    this.connectTimer = null;
  }

  private retryNow(): void {
    this.clearTimers();
    this.clearSubTimers();
    this.generation++;
    const conn = this.conn;
    this.conn = null;
    conn?.close(CloseCode.Normal, 'reconnecting');
    this.failAcks('reconnecting');
    void this.attempt();
  }

  private chooseTransport(): Transport {
    const fb = this.opts.fallback;
    if (!fb || this.wsFailures < (this.opts.fallbackAfter ?? 2)) return this.primary;
    // On the fallback; every fourth attempt gives WebSocket another chance.
    this.fallbackRounds++;
    return this.fallbackRounds % 4 === 0 ? this.primary : fb;
  }

  private async attempt(): Promise<void> {
    const gen = ++this.generation;
    const reconnect = this.everOpened || this.lastCloseValue !== null;
    this.setState(reconnect ? 'reconnecting' : 'connecting');
    let params: Record<string, string> = {};
    if (this.opts.auth) {
      try {
        params = await this.opts.auth.prepare({ reconnect, suspectExpired: this.suspectExpired });
      } catch {
        params = {}; // try without; a refusal then backs off like any failure
      }
      if (gen !== this.generation) return; // closed or restarted meanwhile
    }
    if (this.opts.getConnectionToken) {
      let token: string;
      try {
        token = await this.opts.getConnectionToken();
      } catch (err) {
        if (gen !== this.generation) return;
        // Connecting without it would make this client anonymous: back off.
        this.handleClose(null, CloseCode.Abnormal, `no connection token: ${errorText(err)}`, false);
        return;
      }
      if (gen !== this.generation) return;
      if (token) params = { ...params, token };
    }
    const transport = this.chooseTransport();
    const url = transport.endpoint(endpointURL(this.opts.url, this.opts.base));
    if (this.opts.version === 2) url.searchParams.set('v', '2');
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    // Resume with every known position: v2 WebSocket frames and SSE ids
    // carry them (an event stream is always v2).
    const resume = this.opts.resume ?? (transport.kind === 'sse' ? heraldResume : null);
    this.resumeGroups = [];
    this.resumeFrom = new Map([...this.positionsMap].filter(([g]) => !this.leftGroups.has(g)));
    if (this.everOpened && resume && this.resumeFrom.size > 0) {
      if (resume.query) for (const [k, v] of Object.entries(resume.query(this.resumeFrom))) url.searchParams.set(k, v);
      this.resumeGroups = resume.groups(this.resumeFrom);
    }
    this.connTransport = transport;
    this.conn = transport.connect(url, {
      onOpen: () => {
        if (gen === this.generation) this.handleOpen(transport);
      },
      onMessage: (text, lastEventId) => {
        if (gen === this.generation) this.handleMessage(text, lastEventId);
      },
      onClose: (code, reason, opened) => {
        if (gen === this.generation) this.handleClose(transport, code, reason, opened);
      },
    });
    const timeout = this.opts.connectTimeoutMs ?? 10_000;
    this.connectTimer = setTimeout(() => {
      if (gen !== this.generation || this.stateValue === 'open') return;
      const conn = this.conn;
      this.conn = null;
      this.generation++; // the transport's own close, when it comes, is ignored
      conn?.close(CloseCode.Normal, 'connect timeout');
      this.handleClose(transport, CloseCode.Abnormal, 'connect timeout', false);
    }, timeout);
  }

  private handleOpen(transport: Transport): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    const reconnect = this.everOpened;
    this.everOpened = true;
    this.openedAt = Date.now();
    this.suspectExpired = false;
    if (transport.kind === 'websocket') this.wsFailures = 0;
    this.setState('open');
    const resume = this.opts.resume ?? (transport.kind === 'sse' ? heraldResume : null);
    if (reconnect && resume?.message && this.resumeGroups.length) {
      const m = resume.message(this.resumeFrom);
      if (m) this.send(m);
    }
    this.emit('open', { reconnect, transport: transport.kind });
    if (reconnect) {
      if (this.resumeGroups.length) {
        const timer = setTimeout(() => this.finishResume(false), 10_000);
        this.awaitingResume = { groups: new Map(), left: new Set(this.resumeGroups), timer };
      } else {
        this.emit('resync', { recovered: false, groups: {} });
      }
    }
    // Groups joined with subscribe() (before this connection opened, or on
    // an earlier one) are joined, from their positions, with fresh tokens.
    for (const [g, s] of this.subs) this.rejoin(g, s);
  }

  private finishResume(timedOut: boolean): void {
    const a = this.awaitingResume;
    if (!a) return;
    clearTimeout(a.timer);
    this.awaitingResume = null;
    const groups = Object.fromEntries(a.groups);
    for (const g of a.left) groups[g] = false;
    const recovered = !timedOut && a.left.size === 0 && [...a.groups.values()].every(Boolean);
    this.emit('resync', { recovered, groups });
  }

  /**
   * v2: joins one more group the user may see (its events then arrive on
   * this connection), resuming from the group's last known position; the
   * server acknowledges, then answers with `subscribed`. Joined again after
   * every reconnect until unsubscribe().
   *
   * A group of an app's namespace may need the app's subscription token:
   * `{ token }`, or the token source (`getToken`, else the client's
   * getSubscriptionToken), which is asked for every join. A token with a
   * readable `exp` is renewed before it expires with a fresh one from the
   * source; if the server ends the subscription anyway (`unsubscribed`
   * token_expired), the client subscribes again from its last position.
   * Failures are reported as `subscriptionError` events.
   *
   * Rejects like sendWithAck(), or with the token source's error
   * (TokenUnavailableError); a group the server refused, or whose token
   * could not be had, is let go. Before the connection opens, the client
   * joins the group as soon as it opens, and the call settles with that
   * join (AckLostError if it has not happened within timeoutMs; the group
   * is still joined when it opens).
   */
  subscribe(group: string, options: SubscribeOptions | number = {}): Promise<void> {
    const o: SubscribeOptions = typeof options === 'number' ? { timeoutMs: options } : options;
    let s = this.subs.get(group);
    if (!s) {
      const b = this.opts.backoff;
      s = {
        token: undefined,
        getToken: undefined,
        timer: null,
        backoff: new Backoff({ baseMs: b?.baseMs, maxMs: b?.maxMs, random: b?.random, maxAttempts: this.opts.subscriptionRetries ?? 5 }),
        failures: 0,
        seq: 0,
        joinedAt: 0,
        waiters: new Set(),
      };
      this.subs.set(group, s);
    }
    if (o.getToken) s.getToken = o.getToken;
    this.leftGroups.delete(group);
    if (o.token !== undefined) s.token = o.token;
    if (this.stateValue === 'closed') return Promise.reject(new AckLostError('not connected'));
    if (this.stateValue !== 'open' || !this.connTransport?.canSend) {
      // The connection joins it when it opens (no token is fetched for
      // nothing meanwhile); this call waits for that join.
      const sub = s;
      return new Promise<void>((resolve, reject) => {
        const w = {
          settle: (err?: Error) => {
            clearTimeout(timer);
            sub.waiters.delete(w);
            if (err) reject(err);
            else resolve();
          },
        };
        const timer = setTimeout(() => w.settle(new AckLostError('not joined in time')), o.timeoutMs ?? 10_000);
        sub.waiters.add(w);
      });
    }
    const sub = s;
    const seq = sub.seq + 1; // join() takes it at once
    return this.join(group, sub, o.token, o.timeoutMs).catch((err: unknown) => {
      // Refused, or no token: not a group to rejoin. (Not connected: the
      // next connection joins it.)
      if (this.subs.get(group) === sub && sub.seq === seq && !(err instanceof AckLostError)) this.dropSubscription(group, sub, err as Error);
      throw err;
    });
  }

  /** v2: leaves a group joined with subscribe(). */
  unsubscribe(group: string, timeoutMs = 10_000): Promise<void> {
    const s = this.subs.get(group);
    if (s) this.dropSubscription(group, s, new AckLostError('unsubscribed'));
    this.leftGroups.add(group);
    return this.sendWithAck({ type: 'unsubscribe', data: { group } }, timeoutMs);
  }

  /** The groups joined with subscribe() that the client keeps joined. */
  get subscriptions(): string[] {
    return [...this.subs.keys()];
  }

  /**
   * v2: publishes an event to a group whose namespace lets this client
   * publish; its members (this client too, if it is one) receive
   * `{"type": type, "data": data, group, offset, epoch}`. Resolves on the
   * server's ack, rejects with AckRejectedError (code forbidden,
   * invalid_group, invalid_message, …) or AckLostError.
   */
  publish(group: string, type: string, data: unknown, timeoutMs?: number): Promise<void> {
    const pub: PublishData = { group, type, data };
    return this.sendWithAck({ type: 'publish', data: pub }, timeoutMs);
  }

  /**
   * Sends subscribe for group: with `token`, else a fresh one from its
   * token source, else the one it holds (a reconnect without a source).
   */
  private async join(group: string, s: Subscription, token?: string, timeoutMs?: number): Promise<void> {
    const seq = ++s.seq;
    this.clearSubTimer(s);
    const source = s.getToken ?? this.opts.getSubscriptionToken;
    if (token === undefined && source) {
      try {
        token = await source(group);
      } catch (err) {
        throw new TokenUnavailableError(group, err);
      }
      if (typeof token !== 'string') throw new TokenUnavailableError(group, new Error('the token source gave no string'));
    }
    if (this.subs.get(group) !== s) throw new AckLostError('unsubscribed meanwhile');
    if (s.seq !== seq) throw new AckLostError('a newer join of the group went ahead'); // while the token was fetched
    token ??= s.token;
    s.token = token || undefined;
    const data: SubscribeMessage['data'] = { group };
    const p = this.positionsMap.get(group);
    if (p) {
      data.epoch = p.epoch;
      data.offset = p.offset;
    }
    if (token) data.token = token;
    await this.sendWithAck({ type: 'subscribe', data }, timeoutMs);
    if (s.seq !== seq || this.subs.get(group) !== s) return;
    s.joinedAt = Date.now();
    for (const w of [...s.waiters]) w.settle();
    // Renew before the token expires, when there is a source to renew from.
    const delay = s.token && source ? renewalDelay(s.token) : null;
    if (delay === null) return;
    s.timer = setTimeout(() => {
      s.timer = null;
      // The subscription lasted until its renewal: a new run of tries.
      s.failures = 0;
      s.backoff.reset();
      this.rejoin(group, s);
    }, delay);
  }

  /** Joins (or renews) a group in the background; failures are retried or reported. */
  private rejoin(group: string, s: Subscription): void {
    // Not now: the next connection joins it (an event stream cannot send).
    if (this.stateValue !== 'open' || !this.connTransport?.canSend || this.subs.get(group) !== s) return;
    const gen = this.generation;
    const seq = s.seq + 1;
    this.join(group, s).catch((err: unknown) => {
      if (s.seq !== seq || this.subs.get(group) !== s) return; // superseded
      if (err instanceof AckLostError) {
        // Lost with its connection: the next one joins the group again.
        if (gen !== this.generation || this.stateValue !== 'open') return;
        this.subscriptionFailed(group, s, 'timeout', err.message, true);
        return;
      }
      if (err instanceof TokenUnavailableError) {
        this.subscriptionFailed(group, s, 'token_unavailable', err.message, true, err);
        return;
      }
      const code = err instanceof AckRejectedError ? err.code : 'internal_error';
      this.subscriptionFailed(group, s, code, errorText(err), RETRYABLE_CODES.has(code));
    });
  }

  /** The server ended a subscription (`unsubscribed`). */
  private handleUnsubscribed(d: UnsubscribedData): void {
    const s = this.subs.get(d.group);
    if (!s) {
      this.leftGroups.add(d.group);
      return;
    }
    if (d.code === 'token_expired' && s.joinedAt && Date.now() - s.joinedAt >= (this.opts.stableAfterMs ?? 2_000)) {
      // A token that served its time (it was not renewed: no source, no
      // readable exp, or the renewal came late): a new run of tries.
      s.failures = 0;
      s.backoff.reset();
    }
    // Subscribed again from the last position held, nothing is lost.
    this.subscriptionFailed(d.group, s, d.code, d.message, d.code === 'token_expired');
  }

  /** Counts a failure of group's subscription; retries with backoff while it may, or lets the group go. */
  private subscriptionFailed(group: string, s: Subscription, code: string, message: string, retryable: boolean, err?: Error): void {
    this.clearSubTimer(s);
    s.seq++; // an answer still in flight decides nothing now
    s.failures++;
    const source = s.getToken ?? this.opts.getSubscriptionToken;
    const delay = retryable && source ? s.backoff.next() : null;
    if (delay === null) {
      this.dropSubscription(group, s, err ?? new AckRejectedError({ code, message }));
    } else {
      s.timer = setTimeout(() => {
        s.timer = null;
        this.rejoin(group, s);
      }, delay);
    }
    this.emit('subscriptionError', { group, code, message, failures: s.failures, willRetry: delay !== null, delayMs: delay });
  }

  /** Forgets a group joined with subscribe(); its position stays, for a later subscribe(). */
  private dropSubscription(group: string, s: Subscription, why: Error): void {
    this.clearSubTimer(s);
    s.seq++;
    this.subs.delete(group);
    for (const w of [...s.waiters]) w.settle(why);
    this.leftGroups.add(group);
    const a = this.awaitingResume;
    if (a?.left.delete(group)) {
      a.groups.set(group, false);
      if (a.left.size === 0) this.finishResume(false);
    }
  }

  private clearSubTimer(s: Subscription): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
  }

  private clearSubTimers(): void {
    for (const s of this.subs.values()) this.clearSubTimer(s);
  }

  private handleMessage(text: string, lastEventId?: string): void {
    if (lastEventId) for (const p of parsePositions(lastEventId)) this.positionsMap.set(p.group, p);
    this.emit('raw', text);
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // herald only sends JSON; anything else is not ours to handle
    }
    if (typeof frame !== 'object' || frame === null || typeof (frame as UnknownFrame).type !== 'string') return;
    const f = frame as UnknownFrame;
    const pos = positionOf(f as Partial<StreamPosition>);
    if (pos) {
      const prev = this.positionsMap.get(pos.group);
      if (!prev || prev.epoch !== pos.epoch || pos.offset > prev.offset) this.positionsMap.set(pos.group, pos);
    }
    const ans = heraldResumeAnswer(this.opts.resume, f);
    // Where the server says the client stands in a group, from the moment
    // it joins: it replaces what the client had (after recovered=false the
    // old position is void), and a group quiet until a disconnect can be
    // resumed.
    if (ans?.position) this.positionsMap.set(ans.group, ans.position);
    if (this.awaitingResume) {
      if (ans && this.awaitingResume.left.delete(ans.group)) {
        this.awaitingResume.groups.set(ans.group, ans.recovered);
        if (this.awaitingResume.left.size === 0) this.finishResume(false);
      }
    }
    if (this.opts.acks) {
      const ack = this.opts.acks.match(f);
      if (ack) {
        const p = this.pendingAcks.get(ack.id);
        if (p) {
          clearTimeout(p.timer);
          this.pendingAcks.delete(ack.id);
          if (ack.ok) p.resolve();
          else p.reject(new AckRejectedError(ack.error ?? { code: 'rejected', message: 'the server refused the message' }));
        }
        if (f.type === 'ack') return;
      }
    }
    if (isServerMessage(f)) {
      this.emit(f.type, f as never);
      this.emit('message', f);
      if (f.type === 'unsubscribed' && typeof f.data?.group === 'string') this.handleUnsubscribed(f.data);
    } else {
      this.emit('unknown', f);
    }
    if (pos) this.emit('event', { type: f.type, data: f.data, group: pos.group, offset: pos.offset, epoch: pos.epoch });
  }

  private handleClose(transport: Transport | null, code: number, reason: string, opened: boolean): void {
    this.clearTimers();
    this.clearSubTimers(); // renewals and retries: the next connection joins afresh
    this.conn = null;
    this.failAcks('connection lost');
    if (this.awaitingResume) clearTimeout(this.awaitingResume.timer);
    this.awaitingResume = null;
    if (opened && Date.now() - this.openedAt >= (this.opts.stableAfterMs ?? 2_000)) this.backoff.reset();
    if (!opened && transport?.kind === 'websocket') this.wsFailures++;
    this.suspectExpired = !opened || code === CloseCode.AuthExpired;
    const terminal = (this.opts.terminalCodes ?? [CloseCode.Forbidden, CloseCode.NotFound]).includes(code);
    const delay = terminal ? null : this.backoff.next();
    const info: CloseInfo = { code, reason, wasOpen: opened, willReconnect: delay !== null, delayMs: delay };
    this.lastCloseValue = info;
    if (delay === null) {
      this.generation++;
      this.setState('closed');
      for (const s of this.subs.values()) for (const w of [...s.waiters]) w.settle(new AckLostError('connection closed'));
      this.emit('close', info);
      return;
    }
    this.setState('reconnecting');
    this.emit('close', info);
    const gen = this.generation;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (gen === this.generation) void this.attempt();
    }, delay);
  }
}

function heraldResumeAnswer(r: ResumeStrategy | null | undefined, f: UnknownFrame) {
  return (r ?? heraldResume).answer(f);
}
