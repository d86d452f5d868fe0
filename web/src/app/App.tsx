import { useEffect } from 'react';
import { sseTransport } from '@herald/client';
import { HeraldProvider, type HeraldConfig } from '../hooks';
import { session } from './api';
import { Link, match, navigate, usePath } from './router';
import { SessionProvider, useSession } from './session';
import { ToastProvider } from './components/Toasts';
import { SignIn, SignUp } from './pages/Auth';
import { Campaigns, NewCampaign } from './pages/Campaigns';
import { CampaignDashboard } from './pages/CampaignDashboard';
import { NewQuest, QuestPage, Quests } from './pages/Quests';
import { ApplicationManager, MyApplications } from './pages/Applications';
import { Operations } from './pages/Operations';

// The cookie session authenticates the sockets; where WebSockets cannot
// connect (some proxies), the same endpoints are read as Server-Sent Events.
const realtime: HeraldConfig = { auth: session, fallback: sseTransport() };

export function App() {
  return (
    <HeraldProvider config={realtime}>
      <SessionProvider>
        <ToastProvider>
          <Shell />
        </ToastProvider>
      </SessionProvider>
    </HeraldProvider>
  );
}

function Shell() {
  const { user, loading, signOut } = useSession();
  const path = usePath();
  useEffect(() => {
    // Every page's path ends in a slash, as herald's API paths do.
    if (path === '/') navigate('/campaigns/', true);
    else if (!path.endsWith('/')) navigate(`${path}/${window.location.search}`, true);
  }, [path]);
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <nav aria-label="Main">
          <Link to="/campaigns/" className="brand">
            herald
          </Link>
          <Link to="/campaigns/">Campaigns</Link>
          <Link to="/quests/">Quests</Link>
          {user && <Link to="/manage/">Manage applications</Link>}
          {user && <Link to="/applications/">My applications</Link>}
          {user?.is_staff && <Link to="/ops/">Operations</Link>}
        </nav>
        <div className="account">
          {loading ? null : user ? (
            <>
              <span className="muted" data-testid="signed-in-as">
                Signed in as <strong>{user.username}</strong>
              </span>
              <button type="button" className="btn btn-sm" onClick={() => void signOut().then(() => navigate('/campaigns/'))}>
                Sign out
              </button>
            </>
          ) : (
            <>
              <Link to="/signin/">Sign in</Link>
              <Link to="/signup/" className="btn btn-sm btn-primary">
                Sign up
              </Link>
            </>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {loading ? null : <Page path={path} />}
      </main>
    </>
  );
}

function Page({ path }: { path: string }) {
  let m: Record<string, string> | null;
  if (path === '/' || path === '/campaigns/') return <Campaigns />;
  if (path === '/campaigns/new/') return <NewCampaign />;
  if ((m = match('/campaigns/:id/', path))) return <CampaignDashboard key={m.id} id={m.id!} />;
  if (path === '/quests/') return <Quests />;
  if (path === '/quests/new/') return <NewQuest />;
  if ((m = match('/quests/:id/', path))) return <QuestPage key={m.id} id={m.id!} />;
  if (path === '/manage/') return <ApplicationManager />;
  if (path === '/applications/') return <MyApplications />;
  if (path === '/ops/') return <Operations />;
  if (path === '/signin/') return <SignIn />;
  if (path === '/signup/') return <SignUp />;
  return (
    <section className="card narrow">
      <h1>Page not found</h1>
      <p>
        There is nothing at <code>{path}</code>. <Link to="/campaigns/">Go to the campaigns</Link>.
      </p>
    </section>
  );
}
