import { createContext, useContext, type ReactNode } from 'react';
import {
  HeraldClient,
  endpointURL,
  sessionAuth,
  type AuthProvider,
  type BackoffOptions,
  type SubscriptionTokenSource,
  type Transport,
} from '@herald/client';

/** How the hooks reach herald. Without a provider: the page's origin and its cookie session. */
export interface HeraldConfig {
  /** Base URL of herald (default: the page's location). */
  base?: string;
  /** Credentials for the endpoints (default: the cookie session). */
  auth?: AuthProvider | null;
  transport?: Transport;
  fallback?: Transport | null;
  backoff?: BackoffOptions;
  /** The app's connection token for /ws/ (?token=), fetched anew for every connection attempt. */
  getConnectionToken?: () => Promise<string>;
  /** The app's subscription token for a group (useGroup, client.subscribe()), renewed before it expires. */
  getSubscriptionToken?: SubscriptionTokenSource;
}

const HeraldContext = createContext<HeraldConfig | null>(null);

export function HeraldProvider({ config, children }: { config: HeraldConfig; children: ReactNode }) {
  return <HeraldContext.Provider value={config}>{children}</HeraldContext.Provider>;
}

let defaultConfig: HeraldConfig | null = null;

export function useHeraldConfig(): HeraldConfig {
  const cfg = useContext(HeraldContext);
  if (cfg) return cfg;
  defaultConfig ??= { auth: sessionAuth() };
  return defaultConfig;
}

// One client per endpoint and configuration, shared by every hook that uses
// it (a campaign room and its presence count ride one socket) and closed
// shortly after the last one lets go: a remount (React's StrictMode, a route
// change to the same room) reuses the connection.

interface Entry {
  client: HeraldClient;
  extra: unknown;
  refs: number;
  closeTimer: ReturnType<typeof setTimeout> | null;
}

const registry = new Map<string, Entry>();
const configIds = new WeakMap<object, number>();
let nextConfigId = 1;

export interface AcquireOptions {
  url: string;
  version?: 1 | 2;
  /** Overrides the configured auth (e.g. ?token= for the seeds' hook). */
  auth?: AuthProvider | null;
  authKey?: string;
  /**
   * Runs once when the client is created, before it connects: the place to
   * attach state that must see every frame from the first one (the
   * campaign room's store). Its result is shared with every user of the key.
   */
  setup?: (client: HeraldClient) => unknown;
}

export function clientKey(cfg: HeraldConfig, o: AcquireOptions): string {
  let id = configIds.get(cfg);
  if (!id) {
    id = nextConfigId++;
    configIds.set(cfg, id);
  }
  return `${endpointURL(o.url, cfg.base).href}|v${o.version ?? 1}|c${id}|${o.authKey ?? ''}`;
}

/** Takes a reference to the shared client for key; release() gives it back. */
export function acquireClient(
  key: string,
  cfg: HeraldConfig,
  o: AcquireOptions,
): { client: HeraldClient; extra: unknown; release: () => void } {
  let e = registry.get(key);
  if (!e) {
    const client = new HeraldClient({
      url: o.url,
      base: cfg.base,
      version: o.version ?? 1,
      auth: (o.auth === undefined ? cfg.auth : o.auth) ?? undefined,
      transport: cfg.transport,
      fallback: cfg.fallback ?? null,
      backoff: cfg.backoff,
      getConnectionToken: cfg.getConnectionToken,
      getSubscriptionToken: cfg.getSubscriptionToken,
    });
    e = { client, extra: o.setup?.(client), refs: 0, closeTimer: null };
    registry.set(key, e);
    client.connect();
  }
  const entry = e;
  if (entry.closeTimer) {
    clearTimeout(entry.closeTimer);
    entry.closeTimer = null;
  }
  entry.refs++;
  let released = false;
  return {
    client: entry.client,
    extra: entry.extra,
    release() {
      if (released) return;
      released = true;
      entry.refs--;
      if (entry.refs > 0) return;
      entry.closeTimer = setTimeout(() => {
        if (entry.refs > 0) return;
        registry.delete(key);
        entry.client.close();
      }, 100);
    },
  };
}
