import { useEffect, useState, type FormEvent } from 'react';
import type { Campaign, CampaignDetail } from '@herald/client';
import { get, post, type Page } from '../api';
import { Link, navigate } from '../router';
import { useSession } from '../session';
import { Empty, Field, FormError, Loading, Progress, StatusBadge, TextArea, fieldError } from '../components/ui';

export function Campaigns() {
  const { user } = useSession();
  const [page, setPage] = useState<Page<Campaign> | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    get<Page<Campaign>>('/api/campaigns/?page_size=100')
      .then((p) => live && setPage(p))
      .catch((e: unknown) => live && setError(e));
    return () => {
      live = false;
    };
  }, [user?.id]);
  return (
    <section>
      <div className="page-head">
        <h1>Campaigns</h1>
        {user && (
          <Link to="/campaigns/new/" className="btn btn-primary">
            Start a campaign
          </Link>
        )}
      </div>
      <FormError error={error} />
      {!page && !error && <Loading />}
      {page && page.results.length === 0 && <Empty>No campaigns yet.</Empty>}
      <ul className="grid" aria-label="Campaigns">
        {page?.results.map((c) => (
          <li key={c.id} className="card campaign-card">
            <h2>
              <Link to={`/campaigns/${c.id}/`}>{c.title}</Link>
            </h2>
            <p className="muted">
              by {c.owner.username} · <StatusBadge status={c.status} />
            </p>
            <p className="clamp">{c.description}</p>
            <Progress raised={c.raised_amount} goal={c.goal_amount} currency={c.currency} />
          </li>
        ))}
      </ul>
    </section>
  );
}

export function NewCampaign() {
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [goal, setGoal] = useState('');
  const [draft, setDraft] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const c = await post<CampaignDetail>('/api/campaigns/', {
        title,
        description,
        goal_amount: goal,
        status: draft ? 'draft' : 'active',
      });
      navigate(`/campaigns/${c.id}/`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card narrow">
      <h1>Start a campaign</h1>
      <form onSubmit={submit} noValidate>
        <Field label="Title" required value={title} onChange={(e) => setTitle(e.target.value)} error={fieldError(error, 'title')} />
        <TextArea label="Description" rows={4} value={description} onChange={(e) => setDescription(e.target.value)}
          error={fieldError(error, 'description')} />
        <Field label="Goal (USD)" inputMode="decimal" required placeholder="5000.00" value={goal}
          onChange={(e) => setGoal(e.target.value)} error={fieldError(error, 'goal_amount')} />
        <label className="check">
          <input type="checkbox" checked={draft} onChange={(e) => setDraft(e.target.checked)} /> Keep as a draft (only you see it)
        </label>
        <FormError error={error && !['title', 'description', 'goal_amount'].some((f) => fieldError(error, f)) ? error : null} />
        <button className="btn btn-primary" type="submit" disabled={busy}>
          Start
        </button>
      </form>
    </section>
  );
}
