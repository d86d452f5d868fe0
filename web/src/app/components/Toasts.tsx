import { createContext, useCallback, useContext, useMemo, useRef, useState, type ReactNode } from 'react';

export type Severity = 'info' | 'success' | 'warning' | 'error';

interface Toast {
  id: number;
  message: string;
  severity: Severity;
}

const Ctx = createContext<(message: string, severity?: Severity) => void>(() => {});

/** How long a toast stays, as in the seeds' dashboard. */
export const TOAST_MS = 6000;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const seq = useRef(0);
  const dismiss = useCallback((id: number) => setToasts((prev) => prev.filter((t) => t.id !== id)), []);
  const add = useCallback(
    (message: string, severity: Severity = 'info') => {
      const id = ++seq.current; // unique even for toasts added in the same millisecond
      setToasts((prev) => [...prev, { id, message, severity }]);
      setTimeout(() => dismiss(id), TOAST_MS);
    },
    [dismiss],
  );
  const value = useMemo(() => add, [add]);
  return (
    <Ctx.Provider value={value}>
      {children}
      <div className="toasts" role="region" aria-label="Notifications">
        <div aria-live="polite" aria-atomic="false">
          {toasts.map((t) => (
            <div key={t.id} className={`toast toast-${t.severity}`} role="status">
              <span>{t.message}</span>
              <button type="button" className="toast-close" aria-label="Dismiss notification" onClick={() => dismiss(t.id)}>
                ×
              </button>
            </div>
          ))}
        </div>
      </div>
    </Ctx.Provider>
  );
}

export function useToast() {
  return useContext(Ctx);
}
