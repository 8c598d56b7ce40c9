import { StudioError } from '../../shared/errors';

/** An error as the studio reports it: what was wrong, and what to do. */
export function ErrorNote({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  // an Error, or a plain error as stored and sent by the service ({code, message, hint}, e.g. a failed run's)
  const plain =
    typeof error === 'object' && error !== null && !(error instanceof Error)
      ? (error as { message?: unknown; hint?: unknown })
      : null;
  const message =
    error instanceof Error ? error.message : plain && typeof plain.message === 'string' ? plain.message : String(error);
  const hint = error instanceof StudioError ? error.hint : plain && typeof plain.hint === 'string' ? plain.hint : '';
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
