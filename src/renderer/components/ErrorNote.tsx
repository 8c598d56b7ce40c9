import { StudioError } from '../../shared/errors';

/** An error as the studio reports it: what was wrong, and what to do. */
export function ErrorNote({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const message = error instanceof Error ? error.message : String(error);
  const hint = error instanceof StudioError ? error.hint : '';
  return (
    <div className="error-note" role="alert">
      <strong>{message}</strong>
      {hint && <p>{hint}</p>}
      {onRetry && (
        <button type="button" className="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
