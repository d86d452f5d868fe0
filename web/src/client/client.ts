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
// See README.md in this folder for the seams that wait on the server.

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
  type ServerMessage,
  type ServerMessageType,
  type StreamPosition,
} from './protocol';
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

/** A frame with a type this client does not know (future v2 messages). */
export interface UnknownFrame {
  type: string;
  data?: unknown;
  [k: string]: unknown;
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
}

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
  private readonly extraGroups = new Set<string>();
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
    this.generation++;
    const conn = this.conn;
    this.conn = null;
    conn?.close(CloseCode.Normal, 'client closed');
    this.failAcks('the client was closed');
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
    const transport = this.chooseTransport();
    const url = transport.endpoint(endpointURL(this.opts.url, this.opts.base));
    if (this.opts.version === 2) url.searchParams.set('v', '2');
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    // Resume with every known position: v2 WebSocket frames and SSE ids
    // carry them (an event stream is always v2).
    const resume = this.opts.resume ?? (transport.kind === 'sse' ? heraldResume : null);
    this.resumeGroups = [];
    if (this.everOpened && resume && this.positionsMap.size > 0) {
      if (resume.query) for (const [k, v] of Object.entries(resume.query(this.positionsMap))) url.searchParams.set(k, v);
      this.resumeGroups = resume.groups(this.positionsMap);
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
      const m = resume.message(this.positionsMap);
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
      // Groups joined with subscribe() are joined again, from their positions.
      for (const g of this.extraGroups) void this.subscribe(g).catch(() => {});
    }
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
   */
  subscribe(group: string, timeoutMs = 10_000): Promise<void> {
    this.extraGroups.add(group);
    const p = this.positionsMap.get(group);
    return this.sendWithAck({ type: 'subscribe', data: p ? { group, epoch: p.epoch, offset: p.offset } : { group } }, timeoutMs);
  }

  /** v2: leaves a group joined with subscribe(). */
  unsubscribe(group: string, timeoutMs = 10_000): Promise<void> {
    this.extraGroups.delete(group);
    return this.sendWithAck({ type: 'unsubscribe', data: { group } }, timeoutMs);
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
    } else {
      this.emit('unknown', f);
    }
  }

  private handleClose(transport: Transport, code: number, reason: string, opened: boolean): void {
    this.clearTimers();
    this.conn = null;
    this.failAcks('connection lost');
    if (this.awaitingResume) clearTimeout(this.awaitingResume.timer);
    this.awaitingResume = null;
    if (opened && Date.now() - this.openedAt >= (this.opts.stableAfterMs ?? 2_000)) this.backoff.reset();
    if (!opened && transport.kind === 'websocket') this.wsFailures++;
    this.suspectExpired = !opened || code === CloseCode.AuthExpired;
    const terminal = (this.opts.terminalCodes ?? [CloseCode.Forbidden, CloseCode.NotFound]).includes(code);
    const delay = terminal ? null : this.backoff.next();
    const info: CloseInfo = { code, reason, wasOpen: opened, willReconnect: delay !== null, delayMs: delay };
    this.lastCloseValue = info;
    if (delay === null) {
      this.generation++;
      this.setState('closed');
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
