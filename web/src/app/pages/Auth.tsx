import { Fragment, useState, type FormEvent } from 'react';
import { DEMO_ACCOUNTS, DEMO_PASSWORD, type DemoAccount } from '../demo';
import { Link, navigate, useSearchParam } from '../router';
import { useSession } from '../session';
import { Field, FormError, fieldError } from '../components/ui';

function nextPath(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/campaigns/';
}

function DemoAccounts() {
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
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(username, password);
      navigate(nextPath(next), true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="auth card">
      <h1>Sign in</h1>
      <form onSubmit={submit} noValidate>
        <Field label="Username" name="username" autoComplete="username" required value={username}
          onChange={(e) => setUsername(e.target.value)} error={fieldError(error, 'username')} />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} error={fieldError(error, 'password')} />
        <FormError error={error && !fieldError(error, 'username') && !fieldError(error, 'password') ? error : null} />
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
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
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signUp(username, email, password);
      navigate(nextPath(next), true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fields = ['username', 'email', 'password'];
  return (
    <section className="auth card">
      <h1>Create an account</h1>
      <form onSubmit={submit} noValidate>
        <Field label="Username" name="username" autoComplete="username" required value={username}
          onChange={(e) => setUsername(e.target.value)} error={fieldError(error, 'username')}
          hint="Letters, digits and @ . + - _" />
        <Field label="Email (optional)" name="email" type="email" autoComplete="email" value={email}
          onChange={(e) => setEmail(e.target.value)} error={fieldError(error, 'email')} />
        <Field label="Password" name="password" type="password" autoComplete="new-password" required value={password}
          onChange={(e) => setPassword(e.target.value)} error={fieldError(error, 'password')}
          hint="At least 8 characters, not only digits" />
        <FormError error={error && !fields.some((f) => fieldError(error, f)) ? error : null} />
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create account'}
        </button>
      </form>
      <p className="muted">
        Already have an account? <Link to="/signin/">Sign in</Link>.
      </p>
    </section>
  );
}
