/** The in-app side of run-end notifications: a toast per ended run, in the corner, each opening its run. */
import type { RunToast } from '../useRunNotifications';

export function RunToasts({
  toasts,
  onOpen,
  onDismiss,
}: {
  toasts: readonly RunToast[];
  onOpen: (t: RunToast) => void;
  onDismiss: (id: number) => void;
}) {
  return (
    <div className="toasts" role="status" aria-live="polite" data-testid="run-toasts">
      {toasts.map((t) => (
        <div key={t.id} className={`toast toast-${t.kind}`} data-kind={t.kind} data-run-id={t.runId}>
          <button type="button" className="toast-main" onClick={() => onOpen(t)} title="Open the run">
            <strong className="toast-title">{t.title}</strong>
            <span className="toast-body">{t.body}</span>
          </button>
          <button
            type="button"
            className="toast-close"
            onClick={() => onDismiss(t.id)}
            aria-label={`Dismiss “${t.title}”`}
            title="Dismiss"
          >
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
