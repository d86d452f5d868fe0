import { useMemo, useRef } from 'react';
import { tokenAuth } from '@herald/client';
import { useConnectionState, useHeraldClient } from './useHeraldClient';

export interface ApplicationSocketOptions {
  /** Connect only while true (e.g. while signed in). Default true. */
  enabled?: boolean;
  /** Endpoint (default "/ws/applications/" on the configured base). */
  url?: string;
  /**
   * Called after a reconnect that may have missed events (herald v1 has no
   * resume): reload what is shown through REST.
   */
  onReconnect?: () => void;
}

function storage(): Storage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}

/**
 * The seeds' useApplicationWebSocket(onMessage) → isConnected, on herald's
 * client: onMessage gets every parsed frame ({type, data}) of
 * /ws/applications/ in order. Credentials: the seeds' localStorage
 * `access_token` (sent as ?token=, renewed with `refresh_token` through
 * /api/auth/token/refresh/) when there is one, the cookie session otherwise.
 * Unlike the seed, a new onMessage does not reconnect, and a lost
 * connection comes back by itself.
 */
export function useApplicationWebSocket(
  onMessage: (data: any) => void, // eslint-disable-line @typescript-eslint/no-explicit-any -- the seeds' signature
  options: ApplicationSocketOptions = {},
): boolean {
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const onReconnect = useRef(options.onReconnect);
  onReconnect.current = options.onReconnect;
  const hasToken = storage()?.getItem('access_token') != null;
  const auth = useMemo(
    () =>
      hasToken
        ? tokenAuth({
            getAccess: () => storage()?.getItem('access_token') ?? null,
            getRefresh: () => storage()?.getItem('refresh_token') ?? null,
            setAccess: (t) => storage()?.setItem('access_token', t),
          })
        : undefined,
    [hasToken],
  );
  const attached = useHeraldClient(
    {
      url: options.url ?? '/ws/applications/',
      enabled: options.enabled,
      auth,
      authKey: hasToken ? 'token' : 'session',
    },
    (client) => {
      const a = client.on('message', (m) => handler.current(m));
      const b = client.on('unknown', (m) => handler.current(m));
      const c = client.on('resync', (r) => {
        if (!r.recovered) onReconnect.current?.();
      });
      return () => {
        a();
        b();
        c();
      };
    },
  );
  return useConnectionState(attached?.client ?? null) === 'open';
}
