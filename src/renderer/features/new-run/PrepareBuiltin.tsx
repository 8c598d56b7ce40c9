/**
 * New run in a workspace without a dataset to train on: instead of the dataset field's error, an offer to prepare
 * the builtin dataset (generated here, no download) in one click, its progress, and its end.
 */
import { useEffect, useState } from 'react';
import type { StudioEvents } from '../../../shared/contract';
import { ErrorNote } from '../../components/ErrorNote';
import { compact, duration } from '../../format';
import { useClient, useInvoke } from '../../useInvoke';
import { useStudioEvent } from '../../useEvent';

/** The source the offer prepares, and the dataset id it gets (its default name). */
export const BUILTIN_SOURCE = 'builtin';

type Progress = StudioEvents['dataset-progress'];

type State =
  | { phase: 'idle' }
  | { phase: 'running'; progress?: Progress }
  | { phase: 'failed'; error: unknown }
  | { phase: 'done' };

const STAGES: Record<Progress['stage'], string> = {
  listing: 'Starting',
  downloading: 'Downloading',
  tokenizing: 'Tokenizing',
  finishing: 'Finishing',
};

export function PrepareBuiltin({ onReady }: { onReady: (datasetId: string) => void }) {
  const client = useClient();
  const [sources] = useInvoke('datasets-sources');
  const [estimate] = useInvoke('datasets-estimate', { source: BUILTIN_SOURCE });
  const [state, setState] = useState<State>({ phase: 'idle' });
  const source = sources.status === 'ok' ? sources.data.find((s) => s.id === BUILTIN_SOURCE) : undefined;
  const datasetId = source?.defaultName ?? BUILTIN_SOURCE;

  // a preparation of it that is already running (started on the Datasets page, or before a reload) is followed
  useEffect(() => {
    let live = true;
    client.invoke('datasets-jobs').then(
      (jobs) => {
        if (live && jobs.some((j) => j.datasetId === datasetId))
          setState((s) => (s.phase === 'idle' ? { phase: 'running' } : s));
      },
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [client, datasetId]);

  // followed by its dataset id: its events may come before the answer to the request that started it
  useStudioEvent('dataset-progress', (p) => {
    if (p.datasetId === datasetId) setState({ phase: 'running', progress: p });
  });
  useStudioEvent('dataset-status', (p) => {
    if (p.datasetId !== datasetId) return;
    if (p.status === 'done') {
      setState({ phase: 'done' });
      onReady(datasetId);
    } else if (p.status === 'failed') setState({ phase: 'failed', error: p.error ?? 'The preparation failed.' });
    else if (p.status === 'cancelled') setState({ phase: 'idle' });
  });

  const prepare = () => {
    setState({ phase: 'running' });
    client.invoke('datasets-prepare', { source: BUILTIN_SOURCE }).then(
      () => undefined,
      (error: unknown) => setState({ phase: 'failed', error }),
    );
  };

  const est = estimate.status === 'ok' ? estimate.data : undefined;
  const p = state.phase === 'running' ? state.progress : undefined;
  const fraction =
    p && p.textBytesTotal ? Math.min(1, p.textBytes / p.textBytesTotal) : p?.tokensTotal ? p.tokens / p.tokensTotal : 0;
  return (
    <section className="card prepare-offer" aria-labelledby="prepare-offer-title" data-testid="prepare-builtin">
      <div className="prepare-offer-text">
        <h2 id="prepare-offer-title">This workspace has no dataset to train on yet</h2>
        <p className="muted small" title={source?.description}>
          {source?.title ?? 'The builtin dataset'}: generated on this machine, without a download
          {est?.tokens ? `; about ${compact(est.tokens)} tokens` : ''}
          {est?.seconds ? `, ${duration(Math.max(1, est.seconds))} to prepare` : ''}. Enough to try a run end to end;
          Tiny Shakespeare, FineWeb-edu and your own files are on the <a href="#/datasets">Datasets</a> page.
        </p>
        {state.phase === 'running' && (
          <div className="prepare-offer-progress" role="status" aria-live="polite" data-testid="prepare-progress">
            <span
              className="progress"
              role="progressbar"
              aria-label="Preparing the dataset"
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(fraction * 100)}
            >
              <span style={{ width: `${(fraction * 100).toFixed(1)}%` }} />
            </span>
            <span className="muted small">
              {p
                ? `${STAGES[p.stage]}: ${compact(p.tokens)} tokens${p.etaSec !== undefined ? `, ${duration(p.etaSec)} left` : ''}`
                : 'Starting…'}
            </span>
          </div>
        )}
        {state.phase === 'done' && (
          <p className="small" role="status">
            Dataset “{datasetId}” is ready.
          </p>
        )}
        {state.phase === 'failed' && <ErrorNote error={state.error} onRetry={prepare} />}
      </div>
      {state.phase !== 'done' && (
        <button
          type="button"
          className="button button-primary"
          onClick={prepare}
          disabled={state.phase === 'running'}
          data-testid="prepare-builtin-button"
        >
          {state.phase === 'running' ? 'Preparing…' : `Prepare “${datasetId}”`}
        </button>
      )}
    </section>
  );
}
