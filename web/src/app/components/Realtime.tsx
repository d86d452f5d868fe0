import type { ConnectionState } from '@herald/client';

/** The seeds' green/red dot: "Real-time updates enabled/disabled". */
export function RealtimeIndicator({ state }: { state: ConnectionState }) {
  const on = state === 'open';
  const label = on ? 'enabled' : state === 'connecting' || state === 'idle' ? 'connecting…' : 'disabled';
  return (
    <div className="rt-indicator" data-testid="realtime-indicator" data-state={state} role="status">
      <span className={`rt-dot ${on ? 'rt-on' : 'rt-off'}`} aria-hidden="true" />
      <span>Real-time updates {label}</span>
    </div>
  );
}

/** The seeds' warning while the connection is down. */
export function RealtimeWarning({ state }: { state: ConnectionState }) {
  if (state !== 'reconnecting' && state !== 'closed') return null;
  return (
    <div className="alert alert-warning" role="alert" data-testid="realtime-warning">
      Real-time updates are currently unavailable. Please refresh the page to see the latest updates.
      {state === 'reconnecting' && <span className="muted"> Reconnecting…</span>}
    </div>
  );
}
