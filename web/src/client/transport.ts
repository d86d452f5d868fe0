import { CloseCode, SERVER_MESSAGE_TYPES } from './protocol';

// Transports carry frames between the client and one endpoint. The client
// speaks to them through this small interface so that WebSocket and
// Server-Sent Events (the fallback for networks that break WebSockets) are
// interchangeable.

export interface TransportHandlers {
  onOpen(): void;
  onMessage(text: string, lastEventId?: string): void;
  /** Called once. `opened` says whether onOpen was called first. */
  onClose(code: number, reason: string, opened: boolean): void;
}

export interface TransportConn {
  /** Sends a text frame; false when the transport cannot send now. */
  send(text: string): boolean;
  close(code?: number, reason?: string): void;
}

export interface Transport {
  readonly kind: 'websocket' | 'sse';
  /** Whether this transport can send client messages. */
  readonly canSend: boolean;
  /** The endpoint URL for this transport from the WebSocket one. */
  endpoint(wsURL: URL): URL;
  connect(url: URL, h: TransportHandlers): TransportConn;
}

/** The part of the WHATWG WebSocket a transport needs (browsers, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: never) => unknown) | null;
  onmessage: ((ev: { data: unknown }) => unknown) | null;
  onclose: ((ev: { code: number; reason: string }) => unknown) | null;
  onerror: ((ev: never) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;

/** WebSocket, the primary transport. `Impl` defaults to the global WebSocket. */
export function webSocketTransport(Impl?: WebSocketConstructor): Transport {
  return {
    kind: 'websocket',
    canSend: true,
    endpoint: (u) => new URL(u.href),
    connect(url, h) {
      const Ctor = Impl ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!Ctor) throw new Error('no WebSocket implementation: pass one to webSocketTransport()');
      let opened = false;
      let done = false;
      const finish = (code: number, reason: string) => {
        if (done) return;
        done = true;
        h.onClose(code, reason, opened);
      };
      let ws: WebSocketLike;
      try {
        ws = new Ctor(url.href);
      } catch {
        queueMicrotask(() => finish(1006, 'cannot create WebSocket'));
        return { send: () => false, close: () => finish(1000, '') };
      }
      ws.onopen = () => {
        opened = true;
        h.onOpen();
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data === 'string') h.onMessage(ev.data);
        else if (ev.data != null) h.onMessage(String(ev.data));
      };
      ws.onclose = (ev) => finish(ev.code, ev.reason);
      // Usually a close follows; but a socket that never opened (refused,
      // blocked by a Content Security Policy) may report nothing more.
      ws.onerror = () => {
        if (opened) return;
        finish(1006, 'connection failed');
        try {
          ws.close();
        } catch {
          // already closing
        }
      };
      return {
        send(text) {
          if (ws.readyState !== OPEN) return false;
          ws.send(text);
          return true;
        },
        close(code = 1000, reason = '') {
          try {
            ws.close(code, reason);
          } catch {
            ws.close();
          }
        },
      };
    },
  };
}

/** The part of EventSource the SSE transport needs. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: never) => unknown) | null;
  onerror: ((ev: never) => unknown) | null;
  addEventListener(type: string, fn: (ev: { data: string; lastEventId?: string }) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

/**
 * Server-Sent Events, for networks where WebSockets cannot connect:
 * /ws/<endpoint> becomes /sse/<endpoint> (docs/protocol.md §4b). Receive
 * only: announces and other client messages need the WebSocket (create
 * through REST, which publishes anyway). Each `event:` is a message type
 * and its `data:` the message's data; `id:` is the stream's position in
 * every group, which the client keeps and sends back as ?resume= when it
 * reconnects. The client, not the browser, decides when to reconnect: an
 * error closes the stream and reports it, so backoff, credentials and the
 * choice of transport stay in one place. The one error event a stream gets
 * is `not_found` (its campaign is not there for the client any more, as when
 * it was made a draft again or deleted), after which the server ends it:
 * that is the WebSocket's close 4404, and the stream is reported closed with
 * it.
 */
export function sseTransport(Impl?: EventSourceConstructor, eventTypes: readonly string[] = SERVER_MESSAGE_TYPES): Transport {
  return {
    kind: 'sse',
    canSend: false,
    endpoint(u) {
      const e = new URL(u.href);
      e.protocol = e.protocol === 'wss:' ? 'https:' : 'http:';
      e.pathname = e.pathname.replace(/^\/ws\//, '/sse/');
      e.searchParams.delete('v'); // event streams always carry v2 positions
      return e;
    },
    connect(url, h) {
      const Ctor = Impl ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
      let opened = false;
      let done = false;
      let es: EventSourceLike | null = null;
      const finish = (code: number, reason: string) => {
        if (done) return;
        done = true;
        es?.close();
        h.onClose(code, reason, opened);
      };
      if (!Ctor) {
        queueMicrotask(() => finish(1006, 'no EventSource'));
        return { send: () => false, close: () => finish(1000, '') };
      }
      es = new Ctor(url.href, { withCredentials: true });
      es.onopen = () => {
        if (opened) return;
        opened = true;
        h.onOpen();
      };
      es.onerror = (ev) => {
        // The server's `event: error` messages reach onerror too (an
        // EventSource's own failures are events of that name): those carry
        // data, and their listener below hands them over.
        if (typeof (ev as { data?: unknown } | null)?.data === 'string') return;
        finish(1006, 'event stream failed');
      };
      for (const type of eventTypes) {
        const prefix = `{"type":${JSON.stringify(type)},"data":`;
        // The frame as a WebSocket would carry it; the client parses (and
        // drops anything that is not JSON).
        es.addEventListener(type, (ev) => {
          h.onMessage(`${prefix}${ev.data}}`, ev.lastEventId || undefined);
          if (type === 'error' && errorCode(ev.data) === 'not_found') finish(CloseCode.NotFound, 'campaign not found');
        });
      }
      return {
        send: () => false,
        close: () => finish(1000, ''),
      };
    },
  };
}

/** The code of an error event's data, if it has one. */
function errorCode(data: string): string | undefined {
  try {
    const d = JSON.parse(data) as { code?: unknown } | null;
    return typeof d?.code === 'string' ? d.code : undefined;
  } catch {
    return undefined;
  }
}
