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
  constructor(status: number, code: string, message: string, fields: Record<string, string[]> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
  /** The first message for a field, if any. */
  field(name: string): string | undefined {
    return this.fields[name]?.[0];
  }
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
  try {
    const p = (await res.json()) as { code?: string; detail?: string; errors?: Record<string, string[]> };
    return new ApiError(res.status, p.code ?? 'error', p.detail ?? res.statusText, p.errors ?? {});
  } catch {
    return new ApiError(res.status, 'error', res.statusText || `HTTP ${res.status}`);
  }
}

/** Sends body as JSON, or as multipart/form-data when it is a FormData (an upload). */
export async function api<T>(method: string, path: string, body?: unknown, retried = false): Promise<T> {
  let res: Response;
  const form = body instanceof FormData;
  try {
    res = await fetch(path, {
      method,
      credentials: 'same-origin',
      // The browser sets a form's Content-Type, with its boundary.
      headers: body === undefined || form ? { Accept: 'application/json' } : { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'herald cannot be reached; check your connection and try again');
  }
  if (res.status === 401 && !retried && hasSessionHint() && !path.startsWith('/api/auth/session')) {
    const p = await toError(res.clone());
    if (p.code === 'token_not_valid' || p.code === 'not_authenticated') {
      if (await refreshSession()) return api<T>(method, path, body, true);
      if (p.code === 'token_not_valid') signedOutListeners.forEach((fn) => fn());
    }
  }
  if (!res.ok) throw await toError(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
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
