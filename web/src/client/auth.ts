// Credentials for the real-time endpoints, renewed before a reconnect.
//
// A browser cannot set headers on a WebSocket handshake, so herald takes the
// access token from the session cookie (the web app: nothing to do but keep
// the cookie fresh) or from ?token= (the seeds' hooks, other clients). A
// handshake with an expired token is refused with HTTP 403, which a browser
// only reports as a failed connection; so before reconnecting after such a
// failure, and before using a token that is about to expire, the provider
// renews it.

export interface PrepareContext {
  /** A previous connection or attempt exists: this is a reconnect. */
  reconnect: boolean;
  /**
   * The last attempt failed before the connection opened (a refused
   * handshake looks exactly like that), or the server closed with 4401:
   * the credentials may have expired.
   */
  suspectExpired: boolean;
}

export interface AuthProvider {
  /**
   * Makes the credentials ready for one connection attempt and returns the
   * query parameters to add to the endpoint URL ({} when a cookie carries
   * them). Must not throw for network errors: the attempt then goes ahead
   * and fails on its own, and the client backs off.
   */
  prepare(ctx: PrepareContext): Promise<Record<string, string>>;
}

/** What a provider reports when the session is gone (refresh refused). */
export type SignedOutListener = () => void;

async function postJSON(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body ?? {}),
    ...init,
  });
}

/**
 * A JWT's exp and iat (seconds since the epoch), read from its payload
 * without verifying anything; null when the token has no readable numeric
 * exp (not a JWT, a payload that is not base64url JSON). iat is null when
 * absent or not a number.
 */
export function jwtTimes(token: string): { exp: number; iat: number | null } | null {
  const parts = token.split('.');
  const part = parts[1];
  if (parts.length !== 3 || !part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const json = JSON.parse(atob(padded)) as { exp?: unknown; iat?: unknown } | null;
    if (typeof json !== 'object' || json === null) return null;
    const { exp, iat } = json;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return null;
    return { exp, iat: typeof iat === 'number' && Number.isFinite(iat) ? iat : null };
  } catch {
    return null;
  }
}

/** Seconds since the epoch at which a JWT expires, or null if it has no readable exp. */
export function jwtExpiry(token: string): number | null {
  return jwtTimes(token)?.exp ?? null;
}

export interface TokenAuthOptions {
  /** Where the API lives ("" for the page's origin). */
  apiBase?: string;
  /** The current access token, or null when signed out. */
  getAccess: () => string | null;
  /** The refresh token, or null when there is none. */
  getRefresh: () => string | null;
  /** Keeps a renewed access token. */
  setAccess: (access: string) => void;
  /** Renew a token this many ms before it expires (default 30 000). */
  leewayMs?: number;
  onSignedOut?: SignedOutListener;
  now?: () => number;
}

/**
 * Bearer tokens in ?token= (the seeds' way): refreshed through
 * POST /api/auth/token/refresh/ when expired, about to expire, or suspected
 * expired after a refused handshake.
 */
export function tokenAuth(opts: TokenAuthOptions): AuthProvider {
  const leeway = opts.leewayMs ?? 30_000;
  const now = opts.now ?? Date.now;
  let inflight: Promise<string | null> | null = null;

  const refresh = (): Promise<string | null> => {
    inflight ??= (async () => {
      const rt = opts.getRefresh();
      if (!rt) return null;
      try {
        const res = await postJSON(`${opts.apiBase ?? ''}/api/auth/token/refresh/`, { refresh: rt });
        if (res.status === 400 || res.status === 401) {
          opts.onSignedOut?.();
          return null;
        }
        if (!res.ok) return opts.getAccess();
        const body = (await res.json()) as { access?: string };
        if (body.access) opts.setAccess(body.access);
        return body.access ?? null;
      } catch {
        return opts.getAccess(); // the server is unreachable: try with what we have
      }
    })().finally(() => {
      inflight = null;
    });
    return inflight;
  };

  return {
    async prepare(ctx): Promise<Record<string, string>> {
      let access = opts.getAccess();
      const exp = access ? jwtExpiry(access) : null;
      const expiring = exp !== null && exp * 1000 - leeway <= now();
      if (!access || expiring || ctx.suspectExpired) {
        if (opts.getRefresh()) access = await refresh();
      }
      return access ? { token: access } : {};
    },
  };
}

export interface SessionAuthOptions {
  /** Where the API lives ("" for the page's origin). */
  apiBase?: string;
  /**
   * Renew the access cookie before a reconnect when the last renewal is
   * older than this (default 5 minutes; herald's access tokens live 15).
   */
  maxAgeMs?: number;
  /**
   * Whether there is a session to renew (default: assume there is). A page
   * that knows its visitor never signed in saves the refused renewals.
   */
  signedIn?: () => boolean;
  onSignedOut?: SignedOutListener;
  now?: () => number;
}

/**
 * The web app's cookie session: the HttpOnly access cookie goes with the
 * handshake by itself; before a reconnect that may need it, it is renewed
 * through POST /api/auth/session/refresh/ (the refresh cookie is sent only
 * there).
 */
export function sessionAuth(opts: SessionAuthOptions = {}): AuthProvider & { renewed(): void } {
  const maxAge = opts.maxAgeMs ?? 5 * 60_000;
  const now = opts.now ?? Date.now;
  let last = now();
  let inflight: Promise<void> | null = null;

  const refresh = (): Promise<void> => {
    inflight ??= (async () => {
      try {
        const res = await postJSON(`${opts.apiBase ?? ''}/api/auth/session/refresh/`, {}, { credentials: 'include' });
        if (res.ok) last = now();
        else if (res.status === 401) opts.onSignedOut?.();
      } catch {
        // unreachable: the connection attempt will fail and back off
      }
    })().finally(() => {
      inflight = null;
    });
    return inflight;
  };

  return {
    /** Tell the provider the cookie was just set (sign-in, a REST refresh). */
    renewed() {
      last = now();
    },
    async prepare(ctx) {
      if (opts.signedIn && !opts.signedIn()) return {};
      if (ctx.reconnect && (ctx.suspectExpired || now() - last >= maxAge)) await refresh();
      return {};
    },
  };
}
