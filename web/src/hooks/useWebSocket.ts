import { useCallback, useRef, useState } from 'react';
import { isServerMessage, type ConnectionState, type ServerMessage } from '@herald/client';
import { useConnectionState, useHeraldClient } from './useHeraldClient';

export interface UseWebSocketOptions {
  /**
   * Called for every frame as it arrives, with its MessageEvent and the
   * parsed message (null for a frame this client does not know). Use it
   * rather than `lastMessage` when frames can come back to back: React may
   * render once for several of them, and `lastMessage` holds only the last.
   */
  onMessage?: (event: MessageEvent<string>, message: ServerMessage | null) => void;
  /** Connect only while true (default true). */
  enabled?: boolean;
  /** Protocol version (default 1, the seeds'). */
  version?: 1 | 2;
}

export interface UseWebSocketResult {
  isConnected: boolean;
  lastMessage: MessageEvent<string> | null;
  error: string | null;
  sendMessage: (message: unknown) => void;
  reconnect: () => void;
  /** The full connection state ('connecting', 'open', 'reconnecting', …). */
  state: ConnectionState;
}

function messageEvent(text: string): MessageEvent<string> {
  if (typeof MessageEvent === 'function') return new MessageEvent('message', { data: text });
  return { data: text, type: 'message' } as MessageEvent<string>;
}

/**
 * The seeds' useWebSocket(url), on herald's client: the same result
 * ({ isConnected, lastMessage, error, sendMessage, reconnect }), with
 * reconnection (full-jitter backoff), a reconnect() that works, and an
 * onMessage option that sees every frame. `url` may be absolute
 * (ws://localhost:8000/ws/campaign/1/) or a path on the page's origin.
 */
export function useWebSocket(url: string, options: UseWebSocketOptions = {}): UseWebSocketResult {
  const [lastMessage, setLastMessage] = useState<MessageEvent<string> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const onMessage = useRef(options.onMessage);
  onMessage.current = options.onMessage;

  const attached = useHeraldClient({ url, version: options.version, enabled: options.enabled }, (client) => {
    const offs = [
      client.on('raw', (text) => {
        const ev = messageEvent(text);
        setLastMessage(ev);
        if (onMessage.current) {
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = null;
          }
          onMessage.current(ev, isServerMessage(parsed) ? parsed : null);
        }
      }),
      client.on('open', () => setError(null)),
      client.on('close', () => setError('WebSocket connection error')),
    ];
    if (client.state === 'open') setError(null);
    return () => offs.forEach((off) => off());
  });
  const client = attached?.client ?? null;
  const state = useConnectionState(client);

  const sendMessage = useCallback(
    (message: unknown) => {
      const ok = client?.send(message as never) ?? false;
      if (!ok) setError('WebSocket is not connected');
    },
    [client],
  );
  const reconnect = useCallback(() => client?.reconnect(), [client]);

  return { isConnected: state === 'open', lastMessage, error, sendMessage, reconnect, state };
}

export default useWebSocket;
