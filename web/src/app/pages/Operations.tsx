import { useEffect, useId, useState } from 'react';
import { ApiError, get } from '../api';
import { Link } from '../router';
import { useSession } from '../session';
import { FormError, Loading } from '../components/ui';

/** GET /api/ops/: a snapshot of the running herald; the counters are cumulative since start. */
export interface OpsSnapshot {
  time: string;
  uptime_seconds: number;
  connections: { websocket?: number; sse?: number };
  groups: number;
  events_published: number;
  events_received: number;
  deliveries: number;
  dropped: number;
  slow_consumers: number;
  rate_limited: number;
  handshakes_refused: number;
  outbox_pending: number;
  /** The running build (herald version). */
  version?: { version: string; commit?: string; commit_time?: string; modified?: boolean };
}

/**
 * A build as `herald version` prints it (internal/version's Build.String):
 * "v1.2.3 (commit 0123456789ab, 2025-01-02T03:04:05Z, modified)", with what is known.
 */
export function formatBuild(v: NonNullable<OpsSnapshot['version']>): string {
  const parts: string[] = [];
  if (v.commit) parts.push(`commit ${v.commit.slice(0, 12)}`);
  if (v.commit_time) parts.push(v.commit_time);
  if (v.modified) parts.push('modified');
  return parts.length ? `${v.version} (${parts.join(', ')})` : v.version;
}

/** One poll, reduced to what the charts draw. t is the snapshot's time in ms. */
export interface Sample {
  t: number;
  websocket: number;
  sse: number;
  published: number;
  deliveries: number;
}

/** A per-second rate between two consecutive snapshots, at the later one's time. */
interface Rate {
  t: number;
  published: number;
  deliveries: number;
}

const POLL_MS = 1000;
const WINDOW_MS = 60_000;

function toSample(s: OpsSnapshot): Sample {
  return {
    t: Date.parse(s.time),
    websocket: s.connections.websocket ?? 0,
    sse: s.connections.sse ?? 0,
    published: s.events_published,
    deliveries: s.deliveries,
  };
}

/** The rates between consecutive samples; a counter that went back (a restart) gives no rate. */
export function rates(samples: Sample[]): Rate[] {
  const out: Rate[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const dt = (b.t - a.t) / 1000;
    if (!(dt > 0) || b.published < a.published || b.deliveries < a.deliveries) continue;
    out.push({ t: b.t, published: (b.published - a.published) / dt, deliveries: (b.deliveries - a.deliveries) / dt });
  }
  return out;
}

type State =
  | { kind: 'loading' }
  | { kind: 'forbidden' }
  | { kind: 'error'; error: unknown }
  | { kind: 'ok'; snapshot: OpsSnapshot };

/** The operations page: herald's connections and traffic, polled every second. */
export function Operations() {
  const { user } = useSession();
  const [state, setState] = useState<State>({ kind: 'loading' });
  const [samples, setSamples] = useState<Sample[]>([]);

  useEffect(() => {
    if (!user) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const s = await get<OpsSnapshot>('/api/ops/');
        if (!live) return;
        setState({ kind: 'ok', snapshot: s });
        const sample = toSample(s);
        setSamples((prev) => [...prev.filter((p) => p.t > sample.t - WINDOW_MS - POLL_MS && p.t < sample.t), sample]);
      } catch (e) {
        if (!live) return;
        if (e instanceof ApiError && e.status === 403) {
          setState({ kind: 'forbidden' });
          return; // asking again will not change the answer
        }
        setState((prev) => (prev.kind === 'ok' ? prev : { kind: 'error', error: e }));
      }
      if (live) timer = setTimeout(() => void poll(), POLL_MS);
    };
    void poll();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [user]);

  if (!user) {
    return (
      <section className="card narrow">
        <h1>Sign in first</h1>
        <p>
          <Link to={`/signin/?next=${encodeURIComponent(window.location.pathname)}`}>Sign in</Link> to see the operations page.
        </p>
      </section>
    );
  }

  if (state.kind === 'forbidden') {
    return (
      <section className="card narrow">
        <h1>Operations</h1>
        <p role="alert" data-testid="ops-forbidden">
          The operations page is for administrators. Ask whoever runs this herald to add your username to its{' '}
          <code>--admins</code> list.
        </p>
      </section>
    );
  }

  const r = rates(samples);
  const now = samples.length ? samples[samples.length - 1]!.t : 0;
  return (
    <section>
      <div className="page-head">
        <div>
          <h1>Operations</h1>
          <p className="muted">Live figures of this herald, refreshed every second.</p>
        </div>
        {state.kind === 'ok' && (
          <p className="muted small" data-testid="ops-uptime">
            Up {formatUptime(state.snapshot.uptime_seconds)}
            {state.snapshot.version && (
              <>
                {' · '}herald <span data-testid="ops-version">{formatBuild(state.snapshot.version)}</span>
              </>
            )}
          </p>
        )}
      </div>
      {state.kind === 'loading' && <Loading />}
      {state.kind === 'error' && <FormError error={state.error} />}
      {state.kind === 'ok' && (
        <>
          <h2 className="sr-only">Now</h2>
          <dl className="stats" aria-label="Current figures">
            <Stat label="WebSocket connections" value={state.snapshot.connections.websocket ?? 0} testId="ops-websocket" />
            <Stat label="SSE connections" value={state.snapshot.connections.sse ?? 0} testId="ops-sse" />
            <Stat label="Groups" value={state.snapshot.groups} testId="ops-groups" />
            <Stat label="Outbox pending" value={state.snapshot.outbox_pending} testId="ops-outbox" />
          </dl>
          <div className="charts">
            <LineChart
              title="Connections"
              unit="connections"
              now={now}
              series={[
                { label: 'WebSocket', className: 'series-a', points: samples.map((s) => ({ t: s.t, v: s.websocket })) },
                { label: 'SSE', className: 'series-b', points: samples.map((s) => ({ t: s.t, v: s.sse })) },
              ]}
            />
            <LineChart
              title="Events per second"
              unit="per second"
              now={now}
              series={[
                { label: 'Published', className: 'series-a', points: r.map((x) => ({ t: x.t, v: x.published })) },
                { label: 'Deliveries', className: 'series-b', points: r.map((x) => ({ t: x.t, v: x.deliveries })) },
              ]}
            />
          </div>
          <h2>Since start</h2>
          <dl className="stats" aria-label="Totals since start">
            <Stat label="Slow consumers" value={state.snapshot.slow_consumers} testId="ops-slow" />
            <Stat label="Dropped" value={state.snapshot.dropped} testId="ops-dropped" />
            <Stat label="Rate limited" value={state.snapshot.rate_limited} testId="ops-rate-limited" />
            <Stat label="Handshakes refused" value={state.snapshot.handshakes_refused} testId="ops-refused" />
          </dl>
        </>
      )}
    </section>
  );
}

function Stat({ label, value, testId }: { label: string; value: number; testId: string }) {
  return (
    <div className="stat card">
      <dt>{label}</dt>
      <dd data-testid={testId}>{value.toLocaleString('en-US')}</dd>
    </div>
  );
}

function formatUptime(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

interface Series {
  label: string;
  className: string;
  points: { t: number; v: number }[];
}

const W = 600;
const H = 180;
const PAD = { left: 40, right: 8, top: 10, bottom: 22 };

function fmt(v: number): string {
  return v >= 100 || Number.isInteger(v) ? Math.round(v).toLocaleString('en-US') : v.toFixed(1);
}

/** A line chart of the last minute in plain SVG; the latest values are its text alternative. */
export function LineChart({ title, unit, series, now }: { title: string; unit: string; series: Series[]; now: number }) {
  const id = useId();
  const max = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.v)));
  const top = niceCeil(max);
  const x = (t: number) => PAD.left + ((t - (now - WINDOW_MS)) / WINDOW_MS) * (W - PAD.left - PAD.right);
  const y = (v: number) => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  const latest = series.map((s) => `${s.label} ${fmt(s.points[s.points.length - 1]?.v ?? 0)}`).join(', ');
  const desc = `Last 60 seconds, ${unit}. Latest: ${latest}. Highest: ${fmt(max)}.`;
  return (
    <figure className="chart card" data-testid="ops-chart">
      <figcaption id={`${id}-title`}>
        <h3>{title}</h3>
        <ul className="legend" aria-hidden="true">
          {series.map((s) => (
            <li key={s.label} className={s.className}>
              <span className="swatch" /> {s.label}
            </li>
          ))}
        </ul>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-title ${id}-desc`}>
        <desc id={`${id}-desc`}>{desc}</desc>
        {[0, 0.5, 1].map((f) => (
          <g key={f} className="grid-line">
            <line x1={PAD.left} x2={W - PAD.right} y1={y(top * f)} y2={y(top * f)} />
            <text x={PAD.left - 6} y={y(top * f) + 4} textAnchor="end">
              {fmt(top * f)}
            </text>
          </g>
        ))}
        <text className="axis" x={PAD.left} y={H - 4}>
          −60 s
        </text>
        <text className="axis" x={W - PAD.right} y={H - 4} textAnchor="end">
          now
        </text>
        {series.map((s) => {
          const pts = s.points.filter((p) => p.t >= now - WINDOW_MS);
          if (pts.length === 0) return null;
          const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
          return <path key={s.label} className={`line ${s.className}`} d={pts.length === 1 ? `${d} h1` : d} data-series={s.label} />;
        })}
      </svg>
    </figure>
  );
}

/** The smallest of 1, 2, 5 × 10ⁿ at or above v. */
function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
