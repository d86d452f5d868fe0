import { useEffect, useState, type FormEvent } from 'react';
import type { Application, Quest } from '@herald/client';
import { ApiError, get, getAll, patch, post, type Page } from '../api';
import { Link, navigate } from '../router';
import { useSession } from '../session';
import { useToast } from '../components/Toasts';
import { Empty, Field, FormError, Loading, StatusBadge, TextArea, When, fieldError } from '../components/ui';

export function Quests() {
  const { user } = useSession();
  const [page, setPage] = useState<Page<Quest> | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    get<Page<Quest>>('/api/quests/?page_size=100')
      .then((p) => live && setPage(p))
      .catch((e: unknown) => live && setError(e));
    return () => {
      live = false;
    };
  }, []);
  return (
    <section>
      <div className="page-head">
        <h1>Quests</h1>
        {user && (
          <Link to="/quests/new/" className="btn btn-primary">
            Post a quest
          </Link>
        )}
      </div>
      <FormError error={error} />
      {!page && !error && <Loading />}
      {page && page.results.length === 0 && <Empty>No quests yet.</Empty>}
      <ul className="grid" aria-label="Quests">
        {page?.results.map((q) => (
          <li key={q.id} className="card">
            <h2>
              <Link to={`/quests/${q.id}/`}>{q.title}</Link>
            </h2>
            <p className="muted">
              by {q.creator.username} · <StatusBadge status={q.status} /> · {q.applications_count} application
              {q.applications_count === 1 ? '' : 's'}
            </p>
            <p className="clamp">{q.description}</p>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function NewQuest() {
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const q = await post<Quest>('/api/quests/', { title, description });
      navigate(`/quests/${q.id}/`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card narrow">
      <h1>Post a quest</h1>
      <form onSubmit={submit} noValidate>
        <Field label="Title" required value={title} onChange={(e) => setTitle(e.target.value)} error={fieldError(error, 'title')} />
        <TextArea label="Description" rows={4} value={description} onChange={(e) => setDescription(e.target.value)}
          error={fieldError(error, 'description')} />
        <FormError error={error && !fieldError(error, 'title') && !fieldError(error, 'description') ? error : null} />
        <button className="btn btn-primary" type="submit" disabled={busy}>
          Post quest
        </button>
      </form>
    </section>
  );
}

export function QuestPage({ id }: { id: string }) {
  const { user } = useSession();
  const toast = useToast();
  const [quest, setQuest] = useState<Quest | null>(null);
  const [mine, setMine] = useState<Application | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState('');
  const [applyError, setApplyError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    let live = true;
    get<Quest>(`/api/quests/${id}/`)
      .then((q) => live && setQuest(q))
      .catch((e: unknown) => live && setError(e));
    if (user) {
      get<Page<Application>>(`/api/quests/${id}/applications/?page_size=100`)
        .then((p) => live && setMine(p.results.find((a) => a.applicant.id === user.id) ?? null))
        .catch(() => {});
    } else setMine(null);
    return () => {
      live = false;
    };
  }, [id, user]);

  if (error instanceof ApiError && error.status === 404) {
    return (
      <section className="card narrow">
        <h1>Quest not found</h1>
        <Link to="/quests/">All quests</Link>
      </section>
    );
  }
  if (!quest) {
    return error ? <FormError error={error} /> : <Loading />;
  }
  const isCreator = user?.id === quest.creator.id;
  const apply = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setApplyError(null);
    try {
      const a = await post<Application>(`/api/quests/${quest.id}/applications/`, { message });
      setMine(a);
      setMessage('');
      toast(`You applied to ${quest.title}`, 'success');
    } catch (err) {
      setApplyError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card narrow">
      <h1>{quest.title}</h1>
      <p className="muted">
        by {quest.creator.username} · <StatusBadge status={quest.status} /> · posted <When at={quest.created_at} />
      </p>
      <p className="pre">{quest.description}</p>
      {isCreator && (
        <p>
          <Link to="/manage/" className="btn">
            Manage applications
          </Link>
        </p>
      )}
      {!user && (
        <p>
          <Link to={`/signin/?next=/quests/${quest.id}/`}>Sign in</Link> to apply.
        </p>
      )}
      {user && !isCreator && mine && (
        <p data-testid="my-application">
          You applied: <StatusBadge status={mine.status} /> — follow it in <Link to="/applications/">My applications</Link>.
        </p>
      )}
      {user && !isCreator && !mine && quest.status === 'open' && (
        <form onSubmit={apply} noValidate>
          <TextArea label="Why you? (message to the creator)" name="message" rows={3} value={message}
            onChange={(e) => setMessage(e.target.value)} error={fieldError(applyError, 'message')} />
          <FormError error={applyError && !fieldError(applyError, 'message') ? applyError : null} />
          <button className="btn btn-primary" type="submit" disabled={busy}>
            Apply
          </button>
        </form>
      )}
      {user && !isCreator && !mine && quest.status !== 'open' && <p className="muted">This quest is closed.</p>}
    </section>
  );
}

/** Sets an application's status; the caller shows the result. */
export async function setStatus(a: Application, status: Application['status']): Promise<Application> {
  return patch<Application>(`/api/applications/${a.id}/`, { status });
}

export { getAll };
