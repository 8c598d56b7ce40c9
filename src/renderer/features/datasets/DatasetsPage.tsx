import { useEffect, useMemo, useState } from 'react';
import { EmptyState } from '../../components/EmptyState';
import { ErrorNote } from '../../components/ErrorNote';
import { FormDialog } from '../../components/FormDialog';
import { bytes, int } from '../../format';
import { useClient, useInvoke, useRequest } from '../../useInvoke';
import { DatasetTable, PreviewDialog } from './DatasetTable';
import { JobCard } from './JobCard';
import type { DatasetSummary } from './request';
import { useDatasetJobs, type JobView } from './useDatasetJobs';
import { Wizard } from './Wizard';
import './datasets.css';

const NO_DATASETS: DatasetSummary[] = [];

/**
 * The Datasets page: the wizard that downloads and tokenizes a source (with estimates), the preparations running
 * or paused (progress, pause, resume, cancel), and the datasets of the workspace (preview, resume, delete).
 */
export function DatasetsPage() {
  const client = useClient();
  const [sources, reloadSources] = useInvoke('datasets-sources');
  const { state: load, refresh: reloadList } = useRequest(() => client.invoke('datasets-list'), [client]);
  const datasets = load.data ?? NO_DATASETS;
  const [announce, setAnnounce] = useState('');
  const [previewing, setPreviewing] = useState<DatasetSummary | null>(null);
  const [deleting, setDeleting] = useState<DatasetSummary | null>(null);
  const [cancelling, setCancelling] = useState<JobView | null>(null);

  const jobs = useDatasetJobs((done) => {
    void reloadList().then(() => {
      if (done) setAnnounce(`${done.datasetId} is ready.`);
    });
  });

  // a paused entry kept from an earlier visit whose dataset has since been finished (elsewhere) is stale
  const { dismiss } = jobs;
  useEffect(() => {
    for (const v of jobs.views) {
      if (v.state === 'paused' && datasets.some((d) => d.id === v.datasetId && d.status === 'ready'))
        dismiss(v.datasetId);
    }
  }, [datasets, jobs.views, dismiss]);

  const running = useMemo(
    () =>
      new Set(
        jobs.views
          .filter(
            (v) => v.state === 'running' || v.state === 'starting' || v.state === 'pausing' || v.state === 'cancelling',
          )
          .map((v) => v.datasetId),
      ),
    [jobs.views],
  );

  const totals = useMemo(() => {
    const ready = datasets.filter((d) => d.status === 'ready');
    return {
      n: ready.length,
      tokens: ready.reduce((s, d) => s + d.tokens.train + d.tokens.val, 0),
      bytes: datasets.reduce((s, d) => s + d.bytes, 0),
    };
  }, [datasets]);

  return (
    <div className="stack datasets-page">
      {sources.status === 'loading' && (
        <p className="muted" aria-busy="true">
          Loading the sources…
        </p>
      )}
      {sources.status === 'error' && <ErrorNote error={sources.error} onRetry={reloadSources} />}
      {sources.status === 'ok' && (
        <Wizard sources={sources.data} datasets={datasets} running={running} onStart={jobs.start} />
      )}

      {jobs.loadError !== null && <ErrorNote error={jobs.loadError} onRetry={jobs.reload} />}
      {jobs.views.length > 0 && (
        <section className="stack ds-jobs" aria-labelledby="ds-jobs-title">
          <h2 id="ds-jobs-title" className="ds-section-title">
            Preparations
          </h2>
          {jobs.views.map((v) => (
            <JobCard
              key={v.datasetId}
              view={v}
              onPause={() => void jobs.pause(v.datasetId)}
              onResume={() => void jobs.resume(v.datasetId)}
              onCancel={() => setCancelling(v)}
              onDismiss={() => jobs.dismiss(v.datasetId)}
            />
          ))}
        </section>
      )}

      <section className="stack ds-list" aria-labelledby="ds-list-title">
        <div className="toolbar">
          <h2 id="ds-list-title" className="ds-section-title">
            Datasets in this workspace
          </h2>
          <span className="spacer" />
          {load.status === 'ok' && datasets.length > 0 && (
            <span className="muted small">
              {totals.n} ready · {int(totals.tokens)} tokens · {bytes(totals.bytes)} on disk
            </span>
          )}
          <button type="button" className="button" onClick={() => void reloadList()}>
            Refresh
          </button>
        </div>
        <p className="visually-hidden" role="status" aria-live="polite">
          {announce}
        </p>
        {load.status === 'loading' && (
          <p className="muted" aria-busy="true">
            Loading the datasets…
          </p>
        )}
        {load.status === 'error' && <ErrorNote error={load.error} onRetry={() => void reloadList()} />}
        {load.status === 'ok' && datasets.length === 0 && (
          <EmptyState icon="datasets" title="No datasets yet">
            <p>
              Prepare one above: Tiny Shakespeare (1.1 MB) is ready in seconds, the synthetic stories need no network,
              and your own text, JSONL or parquet can be picked from this machine. The command line does the same:{' '}
              <code>gpt2-studio prepare tinyshakespeare</code>.
            </p>
          </EmptyState>
        )}
        {load.status === 'ok' && datasets.length > 0 && (
          <DatasetTable
            datasets={datasets}
            running={running}
            onPreview={setPreviewing}
            onResume={(d) => void jobs.resume(d.id, d.request)}
            onDelete={setDeleting}
          />
        )}
      </section>

      {previewing && <PreviewDialog dataset={previewing} onClose={() => setPreviewing(null)} />}
      {deleting && (
        <FormDialog
          title={`Delete “${deleting.id}”?`}
          tone="danger"
          cancelLabel="Keep it"
          submitLabel="Delete dataset"
          busyLabel="Deleting…"
          testId="delete-dataset-dialog"
          onClose={() => setDeleting(null)}
          onSubmit={async () => {
            await client.invoke('datasets-remove', { id: deleting.id });
            jobs.dismiss(deleting.id);
            setDeleting(null);
            await reloadList();
          }}
        >
          <p>
            This deletes <code>datasets/{deleting.id}/</code> ({bytes(deleting.bytes)}
            {deleting.status === 'partial' ? ', an interrupted preparation' : ''}) and its downloads. Runs that trained
            on it keep their checkpoints but cannot continue on it. It cannot be undone.
          </p>
        </FormDialog>
      )}
      {cancelling && (
        <FormDialog
          title={`Cancel the preparation of “${cancelling.datasetId}”?`}
          tone="danger"
          cancelLabel="Keep it"
          submitLabel="Cancel and delete"
          busyLabel="Cancelling…"
          testId="cancel-job-dialog"
          onClose={() => setCancelling(null)}
          onSubmit={async () => {
            const id = cancelling.datasetId;
            setCancelling(null);
            await jobs.discard(id);
          }}
        >
          <p>
            This stops it and deletes what was downloaded and tokenized so far. To stop it and continue later, use Pause
            instead.
          </p>
        </FormDialog>
      )}
    </div>
  );
}
