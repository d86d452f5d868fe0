import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import type { User } from '@herald/client';
import { ApiError, SIGNED_IN_HINT as HINT, api, get, onSignedOut, session } from './api';

/**
 * The signed-in user as herald's session endpoints answer it: is_staff for
 * the administrators (herald's --admins), who may open the operations page.
 */
export interface Account extends User {
  is_staff?: boolean;
}

/**
 * How long a sign-in may take before the page gives up on it. herald itself
 * answers within a few seconds (a password check that waits more than 2 s
 * for its turn is answered 503), so a longer wait is a server, proxy or
 * network in trouble: the form says so and can be sent again.
 */
export const SIGN_IN_TIMEOUT_MS = 15_000;

interface SessionValue {
  user: Account | null;
  /** The session is being checked on load. */
  loading: boolean;
  signIn(username: string, password: string, signal?: AbortSignal): Promise<Account>;
  signUp(username: string, email: string, password: string, signal?: AbortSignal): Promise<Account>;
  signOut(): Promise<void>;
}

const Ctx = createContext<SessionValue | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<Account | null>(null);
  const [loading, setLoading] = useState(() => localStorage.getItem(HINT) === '1');

  useEffect(() => {
    if (localStorage.getItem(HINT) !== '1') return;
    let live = true;
    get<Account>('/api/auth/me/')
      .then((u) => live && setUser(u))
      .catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 401) localStorage.removeItem(HINT);
      })
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, []);

  useEffect(
    () =>
      onSignedOut(() => {
        localStorage.removeItem(HINT);
        setUser(null);
      }),
    [],
  );

  const signIn = useCallback(async (username: string, password: string, signal?: AbortSignal) => {
    const s = await api<{ user: Account }>('POST', '/api/auth/session/', { username, password }, { timeoutMs: SIGN_IN_TIMEOUT_MS, signal });
    localStorage.setItem(HINT, '1');
    session.renewed();
    setUser(s.user);
    return s.user;
  }, []);

  const signUp = useCallback(
    async (username: string, email: string, password: string, signal?: AbortSignal) => {
      await api<User>('POST', '/api/auth/register/', { username, email, password }, { timeoutMs: SIGN_IN_TIMEOUT_MS, signal });
      return signIn(username, password, signal);
    },
    [signIn],
  );

  const signOut = useCallback(async () => {
    try {
      await api<void>('DELETE', '/api/auth/session/');
    } finally {
      localStorage.removeItem(HINT);
      setUser(null);
    }
  }, []);

  const value = useMemo(() => ({ user, loading, signIn, signUp, signOut }), [user, loading, signIn, signUp, signOut]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): SessionValue {
  const v = useContext(Ctx);
  if (!v) throw new Error('useSession outside SessionProvider');
  return v;
}
