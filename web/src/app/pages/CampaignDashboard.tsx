import { useEffect, useId, useState, type FormEvent, type ReactNode } from 'react';
import {
  formatMoney,
  type CampaignDetail,
  type CampaignStatus,
  type Comment,
  type ReportedComment,
  type ServerMessage,
} from '@herald/client';
import { useCampaignRoom, usePresence } from '../../hooks';
import { ApiError, api, get, patch, post, type Page } from '../api';
import { Link, navigate } from '../router';
import { useSession } from '../session';
import { useToast, type Severity } from '../components/Toasts';
import { RealtimeIndicator, RealtimeWarning } from '../components/Realtime';
import { Empty, Field, FormError, Loading, Progress, StatusBadge, TextArea, When, fieldError } from '../components/ui';

const TOASTS: Partial<Record<ServerMessage['type'], [string, Severity]>> = {
  contribution: ['New contribution received!', 'success'],
  update: ['Campaign update added!', 'info'],
  comment: ['New comment added!', 'info'],
  release: ['New release published!', 'info'],
  milestone: ['Milestone updated!', 'success'],
  campaign: ['The campaign was updated.', 'info'],
};

export function CampaignDashboard({ id }: { id: string }) {
  const toast = useToast();
  const { user } = useSession();
  const room = useCampaignRoom(id, {
    onMessage: (m) => {
      const t = TOASTS[m.type];
      if (t) toast(t[0], t[1]);
    },
  });
  const watching = usePresence(id);
  const [loadError, setLoadError] = useState<unknown>(null);
  const { seed } = room;

  // The first paint comes from REST (the socket's snapshot replaces it as
  // soon as it arrives), so the page works even where WebSockets do not.
  useEffect(() => {
    let live = true;
    get<CampaignDetail>(`/api/campaigns/${id}/`)
      .then((d) => live && seed(d))
      .catch((e: unknown) => live && setLoadError(e));
    return () => {
      live = false;
    };
  }, [id, user?.id, seed]);

  const c = room.campaign;
  const notFound = (loadError instanceof ApiError && loadError.status === 404) || room.error?.code === 'not_found';
  if (!c && notFound) {
    return (
      <section className="card narrow">
        <h1>Campaign not found</h1>
        <p>It does not exist, or it is a draft you cannot see.</p>
        <Link to="/campaigns/">All campaigns</Link>
      </section>
    );
  }
  if (!c) {
    return (
      <section>
        <RealtimeIndicator state={room.state} />
        <FormError error={loadError} />
        <Loading />
      </section>
    );
  }
  const isOwner = user?.id === c.owner.id;
  const active = c.status === 'active';
  return (
    <section className="dashboard">
      <div className="page-head">
        <div>
          <h1>{c.title}</h1>
          <p className="muted">
            by {c.owner.username} · <StatusBadge status={c.status} />
            {watching !== null && room.isConnected && (
              <>
                {' '}
                · <span data-testid="watching">{watching} watching</span>
              </>
            )}
          </p>
        </div>
        <RealtimeIndicator state={room.state} />
      </div>
      <RealtimeWarning state={room.state} />
      {isOwner && <EditCampaign campaign={c} onDone={(d) => room.apply({ type: 'campaign', data: d })} />}
      {isOwner && <DeleteCampaign campaign={c} />}
      <p className="lead" data-testid="description">{c.description}</p>
      <div className="dash-grid">
        <div className="dash-main">
          <Panel title={`Updates (${c.updates_count})`}>
            {isOwner && <PostUpdate campaign={c} onDone={(d) => room.apply({ type: 'update', data: d })} />}
            {c.updates.length === 0 && <Empty>No updates yet.</Empty>}
            <ul className="feed" data-testid="updates">
              {c.updates.map((u) => (
                <li key={u.id}>
                  <h3>{u.title}</h3>
                  <p className="meta">
                    <When at={u.created_at} />
                  </p>
                  {u.image && <img className="update-image" src={u.image} alt={u.title} loading="lazy" data-testid="update-image" />}
                  <p className="pre">{u.content}</p>
                </li>
              ))}
            </ul>
          </Panel>
          <Panel title={`Comments (${c.comments_count})`}>
            {c.comments.length === 0 && <Empty>No comments yet.</Empty>}
            <ul className="feed" data-testid="comments">
              {c.comments.map((m) => (
                <li key={m.id}>
                  <p className="meta">
                    <strong>{m.user.username}</strong> · <When at={m.created_at} />
                  </p>
                  <p className="pre">{m.content}</p>
                  {user && (
                    <CommentActions campaign={c} comment={m} userId={user.id} isOwner={isOwner}
                      onRemoved={() => room.apply({ type: 'comment_removed', data: { id: m.id, campaign: c.id } })} />
                  )}
                </li>
              ))}
            </ul>
            {user ? (
              <PostComment campaign={c} onDone={(d) => room.apply({ type: 'comment', data: d })} />
            ) : (
              <p className="muted">
                <Link to={`/signin/?next=/campaigns/${c.id}/`}>Sign in</Link> to comment.
              </p>
            )}
          </Panel>
          {isOwner && (
            <ReportedComments campaign={c}
              onHidden={(id) => room.apply({ type: 'comment_removed', data: { id, campaign: c.id } })} />
          )}
        </div>
        <aside className="dash-side">
          <div className="card">
            <Progress raised={c.raised_amount} goal={c.goal_amount} currency={c.currency} />
            <p className="muted" data-testid="contributions-count">
              {c.contributions_count} contribution{c.contributions_count === 1 ? '' : 's'}
            </p>
            {active && user && <Contribute campaign={c} onDone={(d) => room.apply({ type: 'contribution', data: d })} />}
            {active && !user && (
              <p>
                <Link to={`/signin/?next=/campaigns/${c.id}/`}>Sign in</Link> to contribute.
              </p>
            )}
            {!active && <p className="muted">This campaign is {c.status}; it takes no contributions.</p>}
          </div>
          <Panel title="Milestones">
            {isOwner && <AddMilestone campaign={c} onDone={(d) => room.apply({ type: 'milestone', data: d })} />}
            {c.milestones.length === 0 && <Empty>No milestones yet.</Empty>}
            <ul className="list" data-testid="milestones">
              {[...c.milestones]
                .sort((a, b) => Number(a.target_amount) - Number(b.target_amount))
                .map((m) => (
                  <li key={m.id} className={m.reached ? 'reached' : ''}>
                    <span aria-hidden="true">{m.reached ? '✔' : '○'}</span> <strong>{m.title}</strong> —{' '}
                    {formatMoney(m.target_amount, c.currency)}
                    {m.reached && <span className="sr-only"> (reached)</span>}
                    {m.description && <p className="muted small">{m.description}</p>}
                  </li>
                ))}
            </ul>
          </Panel>
          <Panel title="Contributions">
            {c.contributions.length === 0 && <Empty>No contributions yet.</Empty>}
            <ul className="list" data-testid="contributions">
              {c.contributions.map((x) => (
                <li key={x.id}>
                  <strong>{formatMoney(x.amount, x.currency)}</strong> from {x.user.username}{' '}
                  <span className="muted small">
                    <When at={x.created_at} />
                  </span>
                </li>
              ))}
            </ul>
          </Panel>
          <Panel title="Releases">
            {isOwner && <AddRelease campaign={c} onDone={(d) => room.apply({ type: 'release', data: d })} />}
            {c.releases.length === 0 && <Empty>No releases yet.</Empty>}
            <ul className="list" data-testid="releases">
              {c.releases.map((r) => (
                <li key={r.id}>
                  <strong>v{r.version}</strong> {r.title}
                  {r.notes && <p className="muted small">{r.notes}</p>}
                </li>
              ))}
            </ul>
          </Panel>
        </aside>
      </div>
    </section>
  );
}

/** Where the owner may move a campaign from its status (herald's rules). */
const NEXT_STATUS: Record<CampaignStatus, CampaignStatus[]> = {
  draft: ['draft', 'active', 'closed'],
  active: ['active', 'closed', 'draft'],
  closed: ['closed', 'draft'],
};

const STATUS_LABEL: Record<CampaignStatus, string> = {
  draft: 'Draft (only you see it)',
  active: 'Active (takes contributions)',
  closed: 'Closed',
};

/**
 * The owner edits the campaign itself. Every page open on it shows the edit
 * at once (the room's campaign event); made a draft again, it closes for
 * everyone else.
 */
function EditCampaign({ campaign, onDone }: { campaign: CampaignDetail; onDone: (d: CampaignDetail) => void }) {
  const [open, setOpen] = useState(false);
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [goal, setGoal] = useState('');
  const [status, setStatus] = useState<CampaignStatus>(campaign.status);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toast = useToast();
  const statusId = useId();
  const toggle = (now: boolean) => {
    setOpen(now);
    if (!now) return;
    // The form starts from the campaign as it is when opened.
    setTitle(campaign.title);
    setDescription(campaign.description);
    setGoal(campaign.goal_amount);
    setStatus(campaign.status);
    setError(null);
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const d = await patch<CampaignDetail>(`/api/campaigns/${campaign.id}/`, { title, description, goal_amount: goal.trim(), status });
      onDone(d);
      setOpen(false);
    } catch (err) {
      setError(err);
      if (!(err instanceof ApiError && Object.keys(err.fields).length)) toast(err instanceof Error ? err.message : 'Failed', 'error');
    } finally {
      setBusy(false);
    }
  };
  return (
    <details className="owner-form" open={open} onToggle={(e) => open !== e.currentTarget.open && toggle(e.currentTarget.open)}>
      <summary>Edit campaign</summary>
      <form onSubmit={submit} noValidate aria-label="Edit campaign">
        <Field label="Title" name="title" required value={title} onChange={(e) => setTitle(e.target.value)} error={fieldError(error, 'title')} />
        <TextArea label="Description" name="description" rows={3} value={description}
          onChange={(e) => setDescription(e.target.value)} error={fieldError(error, 'description')} />
        <Field label={`Goal (${campaign.currency})`} name="goal_amount" inputMode="decimal" required value={goal}
          onChange={(e) => setGoal(e.target.value)} error={fieldError(error, 'goal_amount')} />
        <div className="field">
          <label htmlFor={statusId}>Status</label>
          <select id={statusId} name="status" value={status} onChange={(e) => setStatus(e.target.value as CampaignStatus)}>
            {NEXT_STATUS[campaign.status].map((s) => (
              <option key={s} value={s}>
                {STATUS_LABEL[s]}
              </option>
            ))}
          </select>
          {fieldError(error, 'status') && <p className="field-error">{fieldError(error, 'status')}</p>}
        </div>
        <FormError error={error instanceof ApiError && Object.keys(error.fields).length ? null : error} />
        <button className="btn btn-primary" type="submit" disabled={busy}>
          Save
        </button>
      </form>
    </details>
  );
}

/**
 * The owner deletes the campaign, once they confirm: it goes with its
 * updates, comments, releases and milestones, and every other page open on
 * it shows it is gone (its room closes with 4404). herald refuses while it
 * has contributions, which are other people's money: closing it is the way
 * to end it then.
 */
function DeleteCampaign({ campaign }: { campaign: CampaignDetail }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toast = useToast();
  const funded = campaign.contributions_count > 0;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('DELETE', `/api/campaigns/${campaign.id}/`);
      toast('The campaign was deleted.', 'success');
      navigate('/campaigns/', true);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <details className="owner-form" onToggle={(e) => !e.currentTarget.open && setError(null)}>
      <summary>Delete campaign</summary>
      <form onSubmit={submit} aria-label="Delete campaign">
        {funded ? (
          <p>It has contributions, so it cannot be deleted: close it instead (Edit campaign, status Closed).</p>
        ) : (
          <p>Delete “{campaign.title}” for good? Its updates, comments, releases and milestones go with it, and it closes on every page open on it.</p>
        )}
        <FormError error={error} />
        {!funded && (
          <button className="btn btn-danger" type="submit" disabled={busy}>
            Delete for good
          </button>
        )}
      </form>
    </details>
  );
}

function Panel({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="card panel" aria-label={title.replace(/ \(\d+\)$/, '')}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

/** Runs a moderation request, telling the user how it went. */
function useModeration() {
  const [busy, setBusy] = useState(false);
  const toast = useToast();
  const run = async (request: () => Promise<unknown>, done: string, after?: () => void) => {
    setBusy(true);
    try {
      await request();
      toast(done, 'success');
      after?.();
    } catch (err) {
      toast(err instanceof Error ? err.message : 'Failed', 'error');
    } finally {
      setBusy(false);
    }
  };
  return { busy, run };
}

/**
 * What the signed-in user may do with a comment: its author deletes it, the
 * campaign's owner hides it, anyone else reports it to the owner (once).
 */
function CommentActions({ campaign, comment, userId, isOwner, onRemoved }: {
  campaign: CampaignDetail;
  comment: Comment;
  userId: number;
  isOwner: boolean;
  onRemoved: () => void;
}) {
  const [reason, setReason] = useState('');
  const [open, setOpen] = useState(false);
  const { busy, run } = useModeration();
  const path = `/api/campaigns/${campaign.id}/comments/${comment.id}/`;
  const mine = comment.user.id === userId;
  return (
    <div className="comment-actions">
      {mine && (
        <button className="btn btn-sm btn-danger" type="button" disabled={busy}
          onClick={() => run(() => api('DELETE', path), 'Comment deleted', onRemoved)}>
          Delete
        </button>
      )}
      {isOwner && !mine && (
        <button className="btn btn-sm btn-danger" type="button" disabled={busy}
          onClick={() => run(() => api('POST', `${path}hide/`), 'Comment hidden', onRemoved)}>
          Hide
        </button>
      )}
      {!mine && !isOwner && (
        <details className="report" open={open} onToggle={(e) => setOpen(e.currentTarget.open)}>
          <summary>Report</summary>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void run(() => post(`${path}report/`, { reason }), "Reported to the campaign's owner", () => (setReason(''), setOpen(false)));
            }}
          >
            <Field label="Reason (optional)" name="reason" value={reason} maxLength={500} onChange={(e) => setReason(e.target.value)} />
            <button className="btn btn-sm" type="submit" disabled={busy}>
              Send report
            </button>
          </form>
        </details>
      )}
    </div>
  );
}

/**
 * The campaign owner's reported comments, most recently reported first: read
 * when the page opens, whenever the comments change (a removal takes one out)
 * and on demand.
 */
function ReportedComments({ campaign, onHidden }: { campaign: CampaignDetail; onHidden: (id: number) => void }) {
  const [reports, setReports] = useState<Page<ReportedComment> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [asked, setAsked] = useState(0);
  const { busy, run } = useModeration();
  const comments = campaign.comments.map((x) => x.id).join(',');
  useEffect(() => {
    let live = true;
    get<Page<ReportedComment>>(`/api/campaigns/${campaign.id}/reports/`)
      .then((p) => {
        if (!live) return;
        setReports(p);
        setError(null);
      })
      .catch((e: unknown) => live && setError(e));
    return () => {
      live = false;
    };
  }, [campaign.id, comments, asked]);
  return (
    <Panel title={`Reported comments (${reports?.count ?? 0})`}>
      <FormError error={error} />
      <button className="btn btn-sm" type="button" onClick={() => setAsked((n) => n + 1)}>
        Refresh
      </button>
      {reports?.count === 0 && <Empty>No reported comments.</Empty>}
      <ul className="feed" data-testid="reports">
        {reports?.results.map((r) => (
          <li key={r.comment.id}>
            <p className="meta">
              <strong>{r.comment.user.username}</strong> · reported {r.reports_count} time{r.reports_count === 1 ? '' : 's'}, last{' '}
              <When at={r.last_reported_at} />
            </p>
            <p className="pre">{r.comment.content}</p>
            {r.reasons.length > 0 && <p className="muted small">Reasons: {r.reasons.join(' · ')}</p>}
            <button className="btn btn-sm btn-danger" type="button" disabled={busy}
              onClick={() => run(() => api('POST', `/api/campaigns/${campaign.id}/comments/${r.comment.id}/hide/`), 'Comment hidden',
                () => onHidden(r.comment.id))}>
              Hide
            </button>
          </li>
        ))}
      </ul>
    </Panel>
  );
}

/** A form that posts to one of the campaign's lists. */
function usePost<T>(campaign: CampaignDetail, kind: string, onDone: (v: T) => void) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toast = useToast();
  const submit = async (e: FormEvent, body: unknown, reset: () => void) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const v = await post<T>(`/api/campaigns/${campaign.id}/${kind}/`, body);
      onDone(v);
      reset();
    } catch (err) {
      setError(err);
      if (!(err instanceof ApiError && Object.keys(err.fields).length)) toast(err instanceof Error ? err.message : 'Failed', 'error');
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, submit };
}

function Contribute({ campaign, onDone }: { campaign: CampaignDetail; onDone: (v: never) => void }) {
  const [amount, setAmount] = useState('');
  const { error, busy, submit } = usePost(campaign, 'contributions', onDone);
  return (
    <form className="inline-form" onSubmit={(e) => submit(e, { amount: amount.trim() }, () => setAmount(''))} noValidate>
      <Field label={`Amount (${campaign.currency})`} name="amount" inputMode="decimal" placeholder="25.00" required
        value={amount} onChange={(e) => setAmount(e.target.value)} error={fieldError(error, 'amount')} />
      <button className="btn btn-primary" type="submit" disabled={busy}>
        Contribute
      </button>
    </form>
  );
}

function PostComment({ campaign, onDone }: { campaign: CampaignDetail; onDone: (v: never) => void }) {
  const [content, setContent] = useState('');
  const { error, busy, submit } = usePost(campaign, 'comments', onDone);
  return (
    <form onSubmit={(e) => submit(e, { content }, () => setContent(''))} noValidate>
      <TextArea label="Add a comment" name="comment" rows={3} required value={content}
        onChange={(e) => setContent(e.target.value)} error={fieldError(error, 'content')} />
      <button className="btn" type="submit" disabled={busy}>
        Post comment
      </button>
    </form>
  );
}

/** The image types herald takes (it checks the file's content, not its name). */
const IMAGE_TYPES = 'image/png,image/jpeg,image/gif,image/webp';

function PostUpdate({ campaign, onDone }: { campaign: CampaignDetail; onDone: (v: never) => void }) {
  const [title, setTitle] = useState('');
  const [content, setContent] = useState('');
  const [image, setImage] = useState<File | null>(null);
  // A file input cannot be cleared through its value: a new key replaces it.
  const [imageInput, setImageInput] = useState(0);
  const { error, busy, submit } = usePost(campaign, 'updates', onDone);
  // With an image the update goes as multipart/form-data, else as JSON.
  const body = () => {
    if (!image) return { title, content };
    const form = new FormData();
    form.append('title', title);
    form.append('content', content);
    form.append('image', image);
    return form;
  };
  const reset = () => {
    setTitle('');
    setContent('');
    setImage(null);
    setImageInput((n) => n + 1);
  };
  return (
    <details className="owner-form">
      <summary>Post an update</summary>
      <form onSubmit={(e) => submit(e, body(), reset)} noValidate>
        <Field label="Title" required value={title} onChange={(e) => setTitle(e.target.value)} error={fieldError(error, 'title')} />
        <TextArea label="Content" rows={4} required value={content} onChange={(e) => setContent(e.target.value)}
          error={fieldError(error, 'content')} />
        <Field key={imageInput} label="Image (optional)" type="file" accept={IMAGE_TYPES} hint="PNG, JPEG, GIF or WebP"
          onChange={(e) => setImage(e.target.files?.[0] ?? null)} error={fieldError(error, 'image')} />
        <button className="btn btn-primary" type="submit" disabled={busy}>
          Post update
        </button>
      </form>
    </details>
  );
}

function AddRelease({ campaign, onDone }: { campaign: CampaignDetail; onDone: (v: never) => void }) {
  const [version, setVersion] = useState('');
  const [title, setTitle] = useState('');
  const [notes, setNotes] = useState('');
  const { error, busy, submit } = usePost(campaign, 'releases', onDone);
  return (
    <details className="owner-form">
      <summary>Publish a release</summary>
      <form onSubmit={(e) => submit(e, { version, title, notes }, () => (setVersion(''), setTitle(''), setNotes('')))} noValidate>
        <Field label="Version" required placeholder="1.0.0" value={version} onChange={(e) => setVersion(e.target.value)}
          error={fieldError(error, 'version')} />
        <Field label="Title" required value={title} onChange={(e) => setTitle(e.target.value)} error={fieldError(error, 'title')} />
        <TextArea label="Notes" rows={3} value={notes} onChange={(e) => setNotes(e.target.value)} error={fieldError(error, 'notes')} />
        <button className="btn btn-primary" type="submit" disabled={busy}>
          Publish
        </button>
      </form>
    </details>
  );
}

function AddMilestone({ campaign, onDone }: { campaign: CampaignDetail; onDone: (v: never) => void }) {
  const [title, setTitle] = useState('');
  const [target, setTarget] = useState('');
  const [description, setDescription] = useState('');
  const { error, busy, submit } = usePost(campaign, 'milestones', onDone);
  return (
    <details className="owner-form">
      <summary>Add a milestone</summary>
      <form
        onSubmit={(e) => submit(e, { title, target_amount: target.trim(), description }, () => (setTitle(''), setTarget(''), setDescription('')))}
        noValidate
      >
        <Field label="Title" required value={title} onChange={(e) => setTitle(e.target.value)} error={fieldError(error, 'title')} />
        <Field label={`Target (${campaign.currency})`} inputMode="decimal" required value={target}
          onChange={(e) => setTarget(e.target.value)} error={fieldError(error, 'target_amount')} />
        <TextArea label="Description" rows={2} value={description} onChange={(e) => setDescription(e.target.value)}
          error={fieldError(error, 'description')} />
        <button className="btn btn-primary" type="submit" disabled={busy}>
          Add milestone
        </button>
      </form>
    </details>
  );
}
