// The REST API from the browser: same origin, cookie session. Errors are
// application/problem+json with field errors; an expired access cookie is
// renewed once through /api/auth/session/refresh/ and the request retried.

import { sessionAuth } from '@herald/client';

/** Django REST framework's page: {count, next, previous, results}. */
export interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Field errors: {field: [message, …]}. */
  readonly fields: Record<string, string[]>;
  /** Seconds the server asked to wait before trying again (Retry-After), if it said. */
  readonly retryAfter: number | null;
  constructor(status: number, code: string, message: string, fields: Record<string, string[]> = {}, retryAfter: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.retryAfter = retryAfter;
  }
  /** The first message for a field, if any. */
  field(name: string): string | undefined {
    return this.fields[name]?.[0];
  }
}

/** The longest Retry-After taken as it is: a day, in seconds. */
export const MAX_RETRY_AFTER_S = 86_400;

/**
 * A Retry-After header in whole seconds from now, from 1 to
 * MAX_RETRY_AFTER_S (a broken or hostile header's huge number is no
 * Infinity, nor a delay setTimeout cannot hold): delay-seconds or an HTTP
 * date; null when absent or unreadable.
 */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | null {
  const v = header?.trim();
  if (!v) return null;
  const bound = (s: number) => Math.min(MAX_RETRY_AFTER_S, Math.max(1, s));
  if (/^\d+$/.test(v)) return bound(Number(v));
  const at = /[a-z]/i.test(v) ? Date.parse(v) : NaN; // an HTTP date names its day and month
  return Number.isNaN(at) ? null : bound(Math.ceil((at - now) / 1000));
}

type SignedOut = () => void;
const signedOutListeners = new Set<SignedOut>();

/** Called when the session turns out to be gone. */
export function onSignedOut(fn: SignedOut): () => void {
  signedOutListeners.add(fn);
  return () => signedOutListeners.delete(fn);
}

/**
 * Whether this browser has signed in: the cookies are HttpOnly, so the page
 * keeps this hint to avoid asking for a session (and being refused) for
 * visitors who never signed in.
 */
export const SIGNED_IN_HINT = 'herald_signed_in';
export const hasSessionHint = () => localStorage.getItem(SIGNED_IN_HINT) === '1';

/** The real-time endpoints' credentials: the same cookie session. */
export const session = sessionAuth({
  signedIn: hasSessionHint,
  onSignedOut: () => signedOutListeners.forEach((fn) => fn()),
});

let refreshing: Promise<boolean> | null = null;

/** Renews the access cookie; false when there is no session to renew. */
export function refreshSession(): Promise<boolean> {
  refreshing ??= fetch('/api/auth/session/refresh/', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: '{}',
  })
    .then((r) => {
      if (r.ok) session.renewed();
      return r.ok;
    })
    .catch(() => false)
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

async function toError(res: Response): Promise<ApiError> {
  const wait = retryAfterSeconds(res.headers.get('Retry-After'));
  try {
    const p = (await res.json()) as { code?: string; detail?: string; errors?: Record<string, string[]> };
    return new ApiError(res.status, p.code ?? 'error', p.detail ?? res.statusText, p.errors ?? {}, wait);
  } catch {
    // Not herald's problem+json: a proxy's page, say.
    return new ApiError(res.status, res.status === 503 ? 'busy' : 'error', res.statusText || `HTTP ${res.status}`, {}, wait);
  }
}

export interface RequestOptions {
  /**
   * Give up after this many milliseconds, the answer's body included: the
   * request is aborted and fails with the code 'timeout'.
   */
  timeoutMs?: number;
  /** Aborts the request (the page was left); it then fails with the code 'aborted'. */
  signal?: AbortSignal;
}

/** Sends body as JSON, or as multipart/form-data when it is a FormData (an upload). */
export async function api<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
  return send<T>(method, path, body, opts, false);
}

async function send<T>(method: string, path: string, body: unknown, opts: RequestOptions, retried: boolean): Promise<T> {
  const ctl = new AbortController();
  let timedOut = false;
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          ctl.abort();
        }, opts.timeoutMs);
  const stop = () => ctl.abort();
  if (opts.signal?.aborted) ctl.abort();
  opts.signal?.addEventListener('abort', stop);
  const failed = (): ApiError =>
    timedOut
      ? new ApiError(0, 'timeout', `herald did not answer within ${Math.round((opts.timeoutMs ?? 0) / 1000)} s; it may be overloaded. Please try again in a moment.`)
      : ctl.signal.aborted
        ? new ApiError(0, 'aborted', 'the request was cancelled')
        : new ApiError(0, 'network', 'herald cannot be reached; check your connection and try again');
  try {
    let res: Response;
    const form = body instanceof FormData;
    try {
      res = await fetch(path, {
        method,
        credentials: 'same-origin',
        // The browser sets a form's Content-Type, with its boundary.
        headers: body === undefined || form ? { Accept: 'application/json' } : { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
        signal: ctl.signal,
      });
    } catch {
      throw failed();
    }
    try {
      if (res.status === 401 && !retried && hasSessionHint() && !path.startsWith('/api/auth/session')) {
        const p = await toError(res.clone());
        if (p.code === 'token_not_valid' || p.code === 'not_authenticated') {
          if (await refreshSession()) return await send<T>(method, path, body, opts, true);
          if (p.code === 'token_not_valid') signedOutListeners.forEach((fn) => fn());
        }
      }
      if (!res.ok) throw await toError(res);
      if (res.status === 204) return undefined as T;
      return (await res.json()) as T;
    } catch (e) {
      // The body was cut off by the timeout or the caller.
      if (ctl.signal.aborted && !(e instanceof ApiError && e.status !== 0)) throw failed();
      throw e;
    }
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', stop);
  }
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body: unknown) => api<T>('POST', path, body);
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);

/** Every item of a paginated list (up to `max`). */
export async function getAll<T>(path: string, max = 500): Promise<T[]> {
  const sep = path.includes('?') ? '&' : '?';
  const out: T[] = [];
  for (let page = 1; out.length < max; page++) {
    const p = await get<Page<T>>(`${path}${sep}page_size=100&page=${page}`);
    out.push(...p.results);
    if (!p.next) break;
  }
  return out;
}
