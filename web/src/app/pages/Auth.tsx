import { Fragment, useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiError, get } from '../api';
import { DEMO_ACCOUNTS, DEMO_PASSWORD, type DemoAccount } from '../demo';
import { Link, navigate, useSearchParam } from '../router';
import { useSession } from '../session';
import { Field, FormError, fieldError } from '../components/ui';

function nextPath(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/campaigns/';
}

/** After this long a sign-in still under way says so. */
export const SLOW_AFTER_MS = 2000;

/** The longest Retry-After a busy answer holds the form's button back for. */
const MAX_HOLD_S = 30;

/**
 * A sign-in or sign-up form's request: busy while it runs, slow once it has
 * taken SLOW_AFTER_MS, and after a busy answer (503) the seconds its
 * Retry-After asked to wait, counted down. The request is aborted when the
 * page is left.
 */
function useAuthRequest(run: (signal: AbortSignal) => Promise<void>) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [slow, setSlow] = useState(false);
  const [retryIn, setRetryIn] = useState(0);
  const ctl = useRef<AbortController | null>(null);
  useEffect(() => () => ctl.current?.abort(), []);
  useEffect(() => {
    if (!busy) return;
    const t = setTimeout(() => setSlow(true), SLOW_AFTER_MS);
    return () => {
      clearTimeout(t);
      setSlow(false);
    };
  }, [busy]);
  useEffect(() => {
    if (retryIn <= 0) return;
    const t = setTimeout(() => setRetryIn((n) => n - 1), 1000);
    return () => clearTimeout(t);
  }, [retryIn]);
  const submit = useCallback(
    async (e: FormEvent) => {
      e.preventDefault();
      ctl.current?.abort();
      const c = new AbortController();
      ctl.current = c;
      setBusy(true);
      setError(null);
      setRetryIn(0);
      try {
        await run(c.signal);
      } catch (err) {
        if (c.signal.aborted) return; // the page was left
        setError(err);
        if (err instanceof ApiError && err.status === 503) setRetryIn(Math.min(err.retryAfter ?? 1, MAX_HOLD_S));
      } finally {
        if (ctl.current === c) setBusy(false);
      }
    },
    [run],
  );
  return { error, busy, slow, retryIn, submit };
}

/** What a sign-in or sign-up says while it runs and when the server is busy or silent. */
function AuthProgress({ slow, busy, what }: { slow: boolean; busy: boolean; what: string }) {
  return (
    <p className="hint" role="status" data-testid="auth-progress">
      {busy && slow ? `Still ${what}… the server is busy; this can take a few more seconds.` : ''}
    </p>
  );
}

function AuthError({ error, retryIn, fields }: { error: unknown; retryIn: number; fields: string[] }) {
  if (error instanceof ApiError && error.status === 503) {
    return (
      <p className="form-error" role="alert">
        The server is busy right now (too many sign-ins at once).{' '}
        {retryIn > 0 ? `Try again in ${retryIn} s.` : 'You can try again now.'}
      </p>
    );
  }
  return <FormError error={error && !fields.some((f) => fieldError(error, f)) ? error : null} />;
}

/** Whether herald serves its demo data (--demo), as the session endpoint says. */
function useDemo(): boolean {
  const [demo, setDemo] = useState(false);
  useEffect(() => {
    let live = true;
    get<{ demo?: boolean }>('/api/auth/session/')
      .then((s) => live && setDemo(s.demo === true))
      .catch(() => {});
    return () => {
      live = false;
    };
  }, []);
  return demo;
}

/** The demo accounts and what each has, where the demo data is on. */
function DemoAccounts() {
  if (!useDemo()) return null;
  return (
    <section className="demo" aria-labelledby="demo-accounts">
      <h2 id="demo-accounts">Demo accounts</h2>
      <p className="muted small">
        With herald&rsquo;s demo data, every one has the password <code>{DEMO_PASSWORD}</code>.
      </p>
      <ul data-testid="demo-accounts">
        {DEMO_ACCOUNTS.map((a) => (
          <li key={a.username}>
            <strong>{a.username}</strong> — {demoFacts(a)}
          </li>
        ))}
      </ul>
    </section>
  );
}

function list(items: string[]) {
  return items.map((x, i) => (
    <Fragment key={x}>
      {i > 0 && (i === items.length - 1 ? ' and ' : ', ')}
      <em>{x}</em>
    </Fragment>
  ));
}

/** "owns campaigns X and Y; created quest Z; applied to W (pending)". */
function demoFacts(a: DemoAccount) {
  const parts = [];
  if (a.campaigns.length)
    parts.push(
      <Fragment key="c">
        owns {a.campaigns.length > 1 ? 'campaigns' : 'campaign'}{' '}
        {list(a.campaigns.map((c) => (c.status === 'active' ? c.title : `${c.title} (${c.status})`)))}
      </Fragment>,
    );
  if (a.quests.length)
    parts.push(
      <Fragment key="q">
        created {a.quests.length > 1 ? 'quests' : 'quest'} {list(a.quests)} (their applicants are under Manage applications)
      </Fragment>,
    );
  if (a.applications.length)
    parts.push(<Fragment key="a">applied to {list(a.applications.map((x) => `${x.quest} (${x.status})`))}</Fragment>);
  return parts.map((p, i) => (
    <Fragment key={i}>
      {i > 0 && '; '}
      {p}
    </Fragment>
  ));
}

export function SignIn() {
  const { signIn } = useSession();
  const next = useSearchParam('next');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const run = useCallback(
    async (signal: AbortSignal) => {
      await signIn(username, password, signal);
      navigate(nextPath(next), true);
    },
    [signIn, username, password, next],
  );
  const { error, busy, slow, retryIn, submit } = useAuthRequest(run);
  return (
    <section className="auth card">
      <h1>Sign in</h1>
      <form onSubmit={submit} noValidate aria-busy={busy}>
        <Field label="Username" name="username" autoComplete="username" required value={username}
          onChange={(e) => setUsername(e.target.value)} error={fieldError(error, 'username')} />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} error={fieldError(error, 'password')} />
        <AuthError error={error} retryIn={retryIn} fields={['username', 'password']} />
        <button type="submit" className="btn btn-primary" disabled={busy || retryIn > 0}>
          {busy ? 'Signing in…' : retryIn > 0 ? `Try again in ${retryIn} s` : 'Sign in'}
        </button>
        <AuthProgress busy={busy} slow={slow} what="signing in" />
      </form>
      <p className="muted">
        New here? <Link to={next ? `/signup/?next=${encodeURIComponent(next)}` : '/signup/'}>Create an account</Link>.
      </p>
      <DemoAccounts />
    </section>
  );
}

export function SignUp() {
  const { signUp } = useSession();
  const next = useSearchParam('next');
  const [username, setUsername] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const run = useCallback(
    async (signal: AbortSignal) => {
      await signUp(username, email, password, signal);
      navigate(nextPath(next), true);
    },
    [signUp, username, email, password, next],
  );
  const { error, busy, slow, retryIn, submit } = useAuthRequest(run);
  const fields = ['username', 'email', 'password'];
  return (
    <section className="auth card">
      <h1>Create an account</h1>
      <form onSubmit={submit} noValidate aria-busy={busy}>
        <Field label="Username" name="username" autoComplete="username" required value={username}
          onChange={(e) => setUsername(e.target.value)} error={fieldError(error, 'username')}
          hint="Letters, digits and @ . + - _" />
        <Field label="Email (optional)" name="email" type="email" autoComplete="email" value={email}
          onChange={(e) => setEmail(e.target.value)} error={fieldError(error, 'email')} />
        <Field label="Password" name="password" type="password" autoComplete="new-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} error={fieldError(error, 'password')}
          hint="At least 8 characters, not only digits" />
        <AuthError error={error} retryIn={retryIn} fields={fields} />
        <button type="submit" className="btn btn-primary" disabled={busy || retryIn > 0}>
          {busy ? 'Creating…' : retryIn > 0 ? `Try again in ${retryIn} s` : 'Create account'}
        </button>
        <AuthProgress busy={busy} slow={slow} what="creating your account" />
      </form>
      <p className="muted">
        Already have an account? <Link to="/signin/">Sign in</Link>.
      </p>
    </section>
  );
}
