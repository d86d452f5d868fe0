import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { ConnectionState, HeraldClient } from '@herald/client';
import { acquireClient, clientKey, useHeraldConfig, type AcquireOptions } from './config';

export interface Attached {
  client: HeraldClient;
  /** What AcquireOptions.setup returned when the client was created. */
  extra: unknown;
}

/**
 * The shared client for an endpoint, or null while `enabled` is false.
 * `listen` runs in the same effect that takes the client, before any frame
 * can arrive, so a listener never misses the first message (the campaign
 * room's snapshot); it returns its unsubscribe function.
 */
export function useHeraldClient(
  o: AcquireOptions & { enabled?: boolean },
  listen?: (client: HeraldClient) => () => void,
): Attached | null {
  const cfg = useHeraldConfig();
  const enabled = o.enabled ?? true;
  const key = enabled ? clientKey(cfg, o) : null;
  const [attached, setAttached] = useState<(Attached & { key: string }) | null>(null);
  const opts = useRef(o);
  opts.current = o;
  const listenRef = useRef(listen);
  listenRef.current = listen;
  useEffect(() => {
    if (!key) {
      setAttached(null);
      return;
    }
    const { client, extra, release } = acquireClient(key, cfg, opts.current);
    const unlisten = listenRef.current?.(client);
    setAttached({ client, extra, key });
    return () => {
      unlisten?.();
      release();
    };
  }, [key, cfg]);
  return attached && attached.key === key ? attached : null;
}

const noop = () => () => {};

/** The connection state of a client ('idle' for none). */
export function useConnectionState(client: HeraldClient | null): ConnectionState {
  return useSyncExternalStore(
    client ? (cb) => client.on('state', cb) : noop,
    () => client?.state ?? 'idle',
    () => 'idle',
  );
}
