import { useCallback, useEffect, useRef, useState } from 'react';
import type { Application, ApplicationUpdateData, NewApplicationData, Quest } from '@herald/client';
import { useApplicationWebSocket } from '../../hooks';
import { get, getAll, patch } from '../api';
import { Link } from '../router';
import { useSession } from '../session';
import { useToast } from '../components/Toasts';
import { RealtimeIndicator, RealtimeWarning } from '../components/Realtime';
import { Empty, FormError, Loading, StatusBadge, When } from '../components/ui';

type Frame =
  | { type: 'new_application'; data: NewApplicationData }
  | { type: 'application_update'; data: ApplicationUpdateData }
  | { type: string; data?: unknown };

function upsert(list: Application[], a: Application): Application[] {
  const i = list.findIndex((x) => x.id === a.id);
  if (i < 0) return [a, ...list];
  const next = list.slice();
  next[i] = a;
  return next;
}

function useLiveState(enabled: boolean, onMessage: (m: Frame) => void, onReconnect: () => void) {
  const isConnected = useApplicationWebSocket(onMessage, { enabled, onReconnect });
  const [everConnected, setEverConnected] = useState(false);
  useEffect(() => {
    if (isConnected) setEverConnected(true);
  }, [isConnected]);
  return isConnected ? 'open' : everConnected ? 'reconnecting' : 'connecting';
}

/** The quest creator's applications: approve or reject, new ones appear live. */
export function ApplicationManager() {
  const { user } = useSession();
  const toast = useToast();
  const [apps, setApps] = useState<Application[] | null>(null);
  const [quests, setQuests] = useState<Quest[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<number | null>(null);

  const load = useCallback(async () => {
    if (!user) return;
    try {
      const qs = await getAll<Quest>(`/api/quests/?creator=${user.id}`);
      const lists = await Promise.all(qs.map((q) => getAll<Application>(`/api/quests/${q.id}/applications/`)));
      setQuests(qs);
      setApps(lists.flat().sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id - a.id));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [user]);

  useEffect(() => {
    void load();
  }, [load]);

  const onMessage = useCallback(
    (m: Frame) => {
      if (m.type === 'new_application') {
        const d = m.data as NewApplicationData;
        toast(`New application from ${d.applicant} for ${d.quest_title}`, 'info');
        get<Application>(`/api/applications/${d.application_id}/`)
          .then((a) => setApps((prev) => upsert(prev ?? [], a)))
          .catch(() => void load());
      } else if (m.type === 'application_update') {
        const d = m.data as ApplicationUpdateData;
        setApps((prev) => prev?.map((a) => (a.id === d.application_id ? { ...a, status: d.status, updated_at: d.updated_at } : a)) ?? prev);
      }
    },
    [toast, load],
  );
  const state = useLiveState(!!user, onMessage, () => void load());

  const decide = async (a: Application, status: 'approved' | 'rejected') => {
    setBusy(a.id);
    try {
      const next = await patch<Application>(`/api/applications/${a.id}/`, { status });
      setApps((prev) => upsert(prev ?? [], next));
      toast(`${status === 'approved' ? 'Approved' : 'Rejected'} ${a.applicant.username}'s application`, status === 'approved' ? 'success' : 'warning');
    } catch (e) {
      toast(e instanceof Error ? e.message : 'The change failed', 'error');
    } finally {
      setBusy(null);
    }
  };

  if (!user) return <SignInFirst />;
  return (
    <section>
      <div className="page-head">
        <h1>Applications to your quests</h1>
        <RealtimeIndicator state={state} />
      </div>
      <RealtimeWarning state={state} />
      <FormError error={error} />
      {!apps && !error && <Loading />}
      {apps && quests.length === 0 && (
        <Empty>
          You have not posted a quest yet. <Link to="/quests/new/">Post one</Link>.
        </Empty>
      )}
      {apps && quests.length > 0 && apps.length === 0 && <Empty>No applications yet.</Empty>}
      {apps && apps.length > 0 && (
        <div className="table-wrap">
          <table data-testid="applications">
            <caption className="sr-only">Applications to your quests</caption>
            <thead>
              <tr>
                <th scope="col">Applicant</th>
                <th scope="col">Quest</th>
                <th scope="col">Message</th>
                <th scope="col">Applied</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {apps.map((a) => (
                <tr key={a.id} data-application={a.id}>
                  <td>{a.applicant.username}</td>
                  <td>
                    <Link to={`/quests/${a.quest}/`}>{a.quest_title}</Link>
                  </td>
                  <td className="msg">{a.message}</td>
                  <td>
                    <When at={a.created_at} />
                  </td>
                  <td>
                    <StatusBadge status={a.status} />
                  </td>
                  <td className="actions">
                    {a.status === 'pending' && (
                      <div className="actions-inner">
                        <button type="button" className="btn btn-primary btn-sm" disabled={busy === a.id}
                          aria-label={`Approve ${a.applicant.username}'s application to ${a.quest_title}`}
                          onClick={() => void decide(a, 'approved')}>
                          Approve
                        </button>
                        <button type="button" className="btn btn-danger btn-sm" disabled={busy === a.id}
                          aria-label={`Reject ${a.applicant.username}'s application to ${a.quest_title}`}
                          onClick={() => void decide(a, 'rejected')}>
                          Reject
                        </button>
                      </div>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** The applicant's applications, with their status kept live. */
export function MyApplications() {
  const { user } = useSession();
  const toast = useToast();
  const [apps, setApps] = useState<Application[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const appsRef = useRef(apps);
  appsRef.current = apps;

  const load = useCallback(async () => {
    if (!user) return;
    try {
      setApps(await getAll<Application>('/api/applications/'));
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [user]);
  useEffect(() => {
    void load();
  }, [load]);

  const onMessage = useCallback(
    (m: Frame) => {
      if (m.type !== 'application_update') return;
      const d = m.data as ApplicationUpdateData;
      toast(`Your application for ${d.quest_title} was ${d.status}`, d.status === 'approved' ? 'success' : 'warning');
      if (!appsRef.current?.some((a) => a.id === d.application_id)) {
        void load();
        return;
      }
      setApps((prev) => prev?.map((a) => (a.id === d.application_id ? { ...a, status: d.status, updated_at: d.updated_at } : a)) ?? prev);
    },
    [toast, load],
  );
  const state = useLiveState(!!user, onMessage, () => void load());

  const withdraw = async (a: Application) => {
    try {
      const next = await patch<Application>(`/api/applications/${a.id}/`, { status: 'withdrawn' });
      setApps((prev) => upsert(prev ?? [], next));
    } catch (e) {
      toast(e instanceof Error ? e.message : 'The change failed', 'error');
    }
  };

  if (!user) return <SignInFirst />;
  return (
    <section>
      <div className="page-head">
        <h1>My applications</h1>
        <RealtimeIndicator state={state} />
      </div>
      <RealtimeWarning state={state} />
      <FormError error={error} />
      {!apps && !error && <Loading />}
      {apps && apps.length === 0 && (
        <Empty>
          You have not applied to a quest yet. <Link to="/quests/">Browse quests</Link>.
        </Empty>
      )}
      {apps && apps.length > 0 && (
        <ul className="list cards" data-testid="my-applications">
          {apps.map((a) => (
            <li key={a.id} className="card row" data-application={a.id}>
              <div>
                <Link to={`/quests/${a.quest}/`}>
                  <strong>{a.quest_title}</strong>
                </Link>
                <p className="muted small">
                  Applied <When at={a.created_at} />
                </p>
              </div>
              <div className="row-end">
                <StatusBadge status={a.status} />
                {a.status === 'pending' && (
                  <button type="button" className="btn btn-sm" onClick={() => void withdraw(a)}
                    aria-label={`Withdraw your application to ${a.quest_title}`}>
                    Withdraw
                  </button>
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function SignInFirst() {
  return (
    <section className="card narrow">
      <h1>Sign in first</h1>
      <p>
        <Link to={`/signin/?next=${encodeURIComponent(window.location.pathname)}`}>Sign in</Link> to see your applications.
      </p>
    </section>
  );
}
