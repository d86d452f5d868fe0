import { useState, type FormEvent } from 'react';
import { Link, navigate, useSearchParam } from '../router';
import { useSession } from '../session';
import { Field, FormError, fieldError } from '../components/ui';

function nextPath(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/campaigns/';
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
        Demo accounts: alice, bob, carol, dave — password <code>herald-demo</code>.
      </p>
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
