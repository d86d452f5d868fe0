import { useId, type InputHTMLAttributes, type ReactNode, type TextareaHTMLAttributes } from 'react';
import { formatMoney, toCents } from '@herald/client';
import { ApiError } from '../api';

export function Field({
  label,
  error,
  hint,
  ...input
}: InputHTMLAttributes<HTMLInputElement> & { label: string; error?: string | undefined; hint?: string }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${id}-err` : hint ? `${id}-hint` : undefined}
        {...input}
      />
      {hint && !error && (
        <p id={`${id}-hint`} className="hint">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-err`} className="field-error">
          {error}
        </p>
      )}
    </div>
  );
}

export function TextArea({
  label,
  error,
  ...input
}: TextareaHTMLAttributes<HTMLTextAreaElement> & { label: string; error?: string | undefined }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea id={id} aria-invalid={error ? true : undefined} aria-describedby={error ? `${id}-err` : undefined} {...input} />
      {error && (
        <p id={`${id}-err`} className="field-error">
          {error}
        </p>
      )}
    </div>
  );
}

/** The error of a failed request that belongs to no field. */
export function FormError({ error }: { error: unknown }) {
  if (!error) return null;
  let msg = 'Something went wrong; please try again.';
  if (error instanceof ApiError) {
    const fieldMsgs = Object.entries(error.fields).filter(([k]) => k === 'non_field_errors' || k === 'detail');
    msg = fieldMsgs.length ? fieldMsgs.map(([, v]) => v.join(' ')).join(' ') : error.message;
  } else if (error instanceof Error) msg = error.message;
  return (
    <p className="form-error" role="alert">
      {msg}
    </p>
  );
}

export function fieldError(error: unknown, name: string): string | undefined {
  return error instanceof ApiError ? error.field(name) : undefined;
}

export function Progress({ raised, goal, currency }: { raised: string; goal: string; currency: string }) {
  const r = toCents(raised);
  const g = toCents(goal);
  const pct = g > 0 ? Math.min(100, Math.floor((r / g) * 100)) : 0;
  return (
    <div className="progress-wrap">
      <div
        className="progress"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        aria-label={`${pct}% of the goal raised`}
      >
        <div className="progress-bar" style={{ width: `${pct}%` }} />
      </div>
      <p className="progress-text">
        <strong data-testid="raised">{formatMoney(raised, currency)}</strong> raised of {formatMoney(goal, currency)} goal ·{' '}
        {pct}%
      </p>
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status}`}>{status}</span>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

export function When({ at }: { at: string }) {
  const d = new Date(at);
  return (
    <time dateTime={at} title={d.toISOString()}>
      {d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}
    </time>
  );
}

export function Loading() {
  return (
    <p className="loading" role="status">
      Loading…
    </p>
  );
}
