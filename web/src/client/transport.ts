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
      // An error is always followed by close; nothing to do here but keep
      // the browser from reporting an unhandled error event.
      ws.onerror = () => {};
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
 * Server-Sent Events: receive-only, for networks where WebSockets cannot
 * connect. Maps /ws/<endpoint> to /sse/<endpoint> (herald's planned SSE
 * endpoints). Each event's `data:` line is either the whole frame
 * ({"type","data",…}) or just its data with the type in `event:`; both are
 * accepted. The browser's EventSource resumes by itself with Last-Event-ID;
 * the client only restarts it after it gave up (readyState CLOSED).
 */
export function sseTransport(Impl?: EventSourceConstructor, eventTypes: readonly string[] = []): Transport {
  return {
    kind: 'sse',
    canSend: false,
    endpoint(u) {
      const e = new URL(u.href);
      e.protocol = e.protocol === 'wss:' ? 'https:' : 'http:';
      e.pathname = e.pathname.replace(/^\/ws\//, '/sse/');
      return e;
    },
    connect(url, h) {
      const Ctor = Impl ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
      let opened = false;
      let done = false;
      const finish = (code: number, reason: string) => {
        if (done) return;
        done = true;
        h.onClose(code, reason, opened);
      };
      if (!Ctor) {
        queueMicrotask(() => finish(1006, 'no EventSource'));
        return { send: () => false, close: () => finish(1000, '') };
      }
      const es = new Ctor(url.href, { withCredentials: true });
      es.onopen = () => {
        if (!opened) {
          opened = true;
          h.onOpen();
        }
      };
      es.onerror = () => {
        // CLOSED (2): EventSource gave up (HTTP error, wrong type); otherwise
        // it is reconnecting by itself with Last-Event-ID.
        if (es.readyState === 2) finish(1006, 'event stream failed');
      };
      const forward = (type: string) => (ev: { data: string; lastEventId?: string }) => {
        let frame: string = ev.data;
        try {
          const parsed = JSON.parse(ev.data) as unknown;
          const whole = typeof parsed === 'object' && parsed !== null && 'type' in parsed && 'data' in parsed;
          if (!whole && type !== 'message') frame = JSON.stringify({ type, data: parsed });
        } catch {
          return; // not JSON: not a herald frame
        }
        h.onMessage(frame, ev.lastEventId);
      };
      es.addEventListener('message', forward('message'));
      for (const t of eventTypes) es.addEventListener(t, forward(t));
      return {
        send: () => false,
        close() {
          es.close();
          finish(1000, '');
        },
      };
    },
  };
}
