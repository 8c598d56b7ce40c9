/**
 * Whether the workspace has the HellaSwag validation data, and a button that prepares it (datasets-prepare
 * {source: 'hellaswag'}) with download progress, an optional mirror URL, and cancel.
 */
import { useCallback, useEffect, useId, useRef, useState } from 'react';
import type { HandlerResult } from '../../../shared/contract';
import { StudioError } from '../../../shared/errors';
import { ErrorNote } from '../../components/ErrorNote';
import { bytes, duration, int } from '../../format';
import { pageHref } from '../../router';
import { useStudioEvent } from '../../useEvent';
import { useClient, useRequest, type InvokeState } from '../../useInvoke';

type Dataset = HandlerResult<'datasets-list'>[number];

export const HELLASWAG_DATASET = 'hellaswag';

interface Job {
  jobId: string;
  stage: string;
  bytes: number;
  total?: number;
  bytesPerSec?: number;
  etaSec?: number;
}

/** The workspace's HellaSwag dataset (null when it has none), or why it could not be looked up. */
export type DataState = InvokeState<Dataset | null>;

/** The workspace's HellaSwag dataset, kept up to date by dataset events. */
export function useHellaswagData(): [DataState, () => void] {
  const client = useClient();
  const { state, refresh } = useRequest(
    async () =>
      (await client.invoke('datasets-list')).find((d) => d.id === HELLASWAG_DATASET && d.kind === 'raw') ?? null,
    [client],
  );
  const reload = useCallback(() => void refresh(), [refresh]);
  useStudioEvent('dataset-status', (p) => {
    if (p.datasetId === HELLASWAG_DATASET && p.status !== 'running') reload();
  });
  return [state, reload];
}

export function HellaswagData({ state, onReload }: { state: DataState; onReload: () => void }) {
  const client = useClient();
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [url, setUrl] = useState('');
  const [starting, setStarting] = useState(false);
  // jobs whose end has been seen (an event may come before the answer to datasets-prepare)
  const ended = useRef(new Set<string>());
  const urlId = useId();

  // a preparation started elsewhere (the Datasets page, before a reload) shows here too
  useEffect(() => {
    client.invoke('datasets-jobs').then(
      (jobs) => {
        const j = jobs.find((x) => x.datasetId === HELLASWAG_DATASET);
        if (j && !ended.current.has(j.jobId)) setJob((cur) => cur ?? { jobId: j.jobId, stage: j.stage, bytes: 0 });
      },
      () => undefined,
    );
  }, [client]);

  useStudioEvent('dataset-status', (p) => {
    if (p.datasetId !== HELLASWAG_DATASET) return;
    if (p.status === 'running') {
      setJob((cur) => cur ?? { jobId: p.jobId, stage: 'listing', bytes: 0 });
      return;
    }
    ended.current.add(p.jobId);
    setJob(null);
    if (p.status === 'failed' && p.error) setError(StudioError.fromPlain(p.error));
    if (p.status === 'cancelled') setError(null);
  });
  useStudioEvent('dataset-progress', (p) => {
    if (p.datasetId === HELLASWAG_DATASET && !ended.current.has(p.jobId))
      setJob((cur) => ({ ...(cur ?? { bytes: 0 }), jobId: p.jobId, stage: p.stage }));
  });
  useStudioEvent('download-progress', (p) => {
    setJob((cur) =>
      cur && cur.jobId === p.id
        ? { ...cur, bytes: p.bytes, total: p.total, bytesPerSec: p.bytesPerSec, etaSec: p.etaSec }
        : cur,
    );
  });

  const prepare = async () => {
    setError(null);
    setStarting(true);
    try {
      const u = url.trim();
      const started = await client.invoke('datasets-prepare', { source: 'hellaswag', ...(u ? { url: u } : {}) });
      if (!ended.current.has(started.jobId))
        setJob((cur) => (cur?.jobId === started.jobId ? cur : { jobId: started.jobId, stage: 'listing', bytes: 0 }));
      else onReload();
    } catch (e) {
      setError(e);
    } finally {
      setStarting(false);
    }
  };

  const cancel = async () => {
    if (!job) return;
    try {
      await client.invoke('datasets-cancel', { jobId: job.jobId });
    } catch (e) {
      setError(e);
    }
  };

  if (state.status === 'loading')
    return (
      <p className="muted small" aria-busy="true">
        Looking for the HellaSwag data…
      </p>
    );
  if (state.status === 'error') return <ErrorNote error={state.error} onRetry={onReload} />;

  const d = state.data ?? null;
  if (d && d.status === 'ready' && !job) {
    return (
      <p className="muted small hs-data-ready" data-testid="hellaswag-data">
        HellaSwag data: {d.examples !== undefined ? `${int(d.examples)} validation examples` : 'ready'} (
        {bytes(d.bytes)}), from the <a href={pageHref('datasets')}>Datasets</a> page.
      </p>
    );
  }

  const frac = job?.total ? Math.min(1, job.bytes / job.total) : null;
  return (
    <section className="hs-data card card-tight" aria-labelledby="hs-data-title" data-testid="hellaswag-data">
      <h3 id="hs-data-title">HellaSwag data needed</h3>
      <p className="small">
        {d?.status === 'partial'
          ? 'An earlier download of the HellaSwag validation set stopped before it finished. Preparing again continues it.'
          : 'This workspace has no HellaSwag validation set yet. It is one file of about 7.5 MB with 10,042 examples (github.com/rowanz/hellaswag), downloaded once and kept in the workspace.'}{' '}
        The command line does the same: <code>gpt2-studio prepare hellaswag</code>.
      </p>
      {job ? (
        <div className="hs-data-progress" role="status" aria-live="polite">
          <div className="toolbar">
            <span className="small">
              {job.stage === 'downloading' || job.bytes > 0
                ? `Downloading: ${bytes(job.bytes)}${job.total ? ` of ${bytes(job.total)}` : ''}${job.bytesPerSec ? ` · ${bytes(job.bytesPerSec)}/s` : ''}${job.etaSec !== undefined ? ` · ${duration(job.etaSec)} left` : ''}`
                : job.stage === 'finishing'
                  ? 'Checking the examples…'
                  : 'Starting…'}
            </span>
            <span className="spacer" />
            <button type="button" className="button" onClick={cancel}>
              Cancel download
            </button>
          </div>
          <progress className="hs-progress" max={1} value={frac ?? undefined} aria-label="HellaSwag download" />
        </div>
      ) : (
        <div className="toolbar">
          <button type="button" className="button button-primary" onClick={prepare} disabled={starting}>
            {d?.status === 'partial' ? 'Resume preparing HellaSwag data' : 'Prepare HellaSwag data'}
          </button>
          <details className="hs-mirror">
            <summary className="small">Download from a mirror</summary>
            <div className="field">
              <label htmlFor={urlId}>hellaswag_val.jsonl URL</label>
              <input
                id={urlId}
                type="url"
                value={url}
                placeholder="https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
                onChange={(e) => setUrl(e.target.value)}
              />
            </div>
          </details>
        </div>
      )}
      {error != null && <ErrorNote error={error} />}
    </section>
  );
}
