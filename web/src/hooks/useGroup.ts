import { useCallback, useEffect, useRef, useState } from 'react';
import {
  AckLostError,
  AckRejectedError,
  type ConnectionState,
  type GroupEvent,
  type HeraldClient,
  type SubscriptionErrorInfo,
  type SubscriptionTokenSource,
} from '@herald/client';
import { useConnectionState, useHeraldClient } from './useHeraldClient';

export interface UseGroupOptions {
  /** This group's subscription token source (default: the provider's getSubscriptionToken). */
  getToken?: SubscriptionTokenSource;
  /** Called for every event of the group as it arrives (lastEvent holds only the latest). */
  onEvent?: (event: GroupEvent) => void;
  /** The endpoint (default "/ws/", the one for apps' groups). */
  url?: string;
  /** Subscribe only while true (default true). */
  enabled?: boolean;
}

export interface GroupState {
  lastEvent: GroupEvent | null;
  /** The connection is in the group: the server confirmed the join, and has not ended it since. */
  isSubscribed: boolean;
  /** Why the group could not be joined or kept, null once it is (again). */
  error: SubscriptionErrorInfo | null;
  isConnected: boolean;
  state: ConnectionState;
  /** Publishes an event to the group (where its namespace lets this client). */
  publish: (type: string, data: unknown) => Promise<void>;
}

// How many hooks hold each group of a shared client: the last one to let
// go unsubscribes.
const holders = new WeakMap<HeraldClient, Map<string, number>>();

function hold(client: HeraldClient, group: string, getToken: SubscriptionTokenSource | undefined, onRefused: (e: SubscriptionErrorInfo) => void) {
  let m = holders.get(client);
  if (!m) holders.set(client, (m = new Map()));
  const n = (m.get(group) ?? 0) + 1;
  m.set(group, n);
  if (n === 1) {
    client.subscribe(group, { getToken }).catch((err: unknown) => {
      // Not connected yet: the client joins it when it is.
      if (err instanceof AckLostError) return;
      const code = err instanceof AckRejectedError ? err.code : 'token_unavailable';
      onRefused({ group, code, message: err instanceof Error ? err.message : String(err), failures: 1, willRetry: false, delayMs: null });
    });
  }
  return () => {
    const left = (m.get(group) ?? 1) - 1;
    if (left > 0) {
      m.set(group, left);
      return;
    }
    m.delete(group);
    client.unsubscribe(group).catch(() => {}); // a closed client has left anyway
  };
}

/**
 * A group of an app's namespace (chat:lobby, room_5) on the shared v2
 * connection to /ws/: subscribed while mounted, with the app's
 * subscription token (renewed before it expires), its latest event, and
 * publish. Hooks on the same group share one subscription.
 */
export function useGroup(group: string | null | undefined, options: UseGroupOptions = {}): GroupState {
  const [lastEvent, setLastEvent] = useState<GroupEvent | null>(null);
  const [error, setError] = useState<SubscriptionErrorInfo | null>(null);
  const [isSubscribed, setSubscribed] = useState(false);
  const onEvent = useRef(options.onEvent);
  onEvent.current = options.onEvent;
  const getToken = useRef(options.getToken);
  getToken.current = options.getToken;
  const attached = useHeraldClient({ url: options.url ?? '/ws/', version: 2, enabled: (options.enabled ?? true) && !!group });
  const client = attached?.client ?? null;
  const state = useConnectionState(client);
  const hasOwnToken = options.getToken !== undefined;

  useEffect(() => {
    if (!client || !group) return;
    setLastEvent(null);
    setError(null);
    setSubscribed(false);
    const offs = [
      client.on('event', (e) => {
        if (e.group !== group) return;
        setLastEvent(e);
        onEvent.current?.(e);
      }),
      client.on('subscribed', (m) => {
        if (m.data.group !== group) return;
        setError(null);
        setSubscribed(true);
      }),
      client.on('unsubscribed', (m) => m.data.group === group && setSubscribed(false)),
      client.on('close', () => setSubscribed(false)),
      client.on('subscriptionError', (e) => e.group === group && setError(e)),
    ];
    const source = hasOwnToken ? (g: string) => getToken.current!(g) : undefined;
    const release = hold(client, group, source, setError);
    return () => {
      offs.forEach((off) => off());
      release();
    };
  }, [client, group, hasOwnToken]);

  const publish = useCallback(
    (type: string, data: unknown) =>
      client && group ? client.publish(group, type, data) : Promise.reject(new AckLostError('not connected')),
    [client, group],
  );
  return { lastEvent, isSubscribed, error, isConnected: state === 'open', state, publish };
}
