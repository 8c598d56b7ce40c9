import type { ReactNode } from 'react';
import { StudioError } from '../../../shared/errors';
import { ErrorNote } from '../../components/ErrorNote';
import { bytes, compact, duration, int } from '../../format';
import type { JobView } from './useDatasetJobs';

const STAGE_LABEL: Record<JobView['stage'], string> = {
  listing: 'Listing files',
  downloading: 'Downloading',
  tokenizing: 'Tokenizing',
  finishing: 'Finishing',
};

const STATE_LABEL: Record<JobView['state'], string> = {
  starting: 'Starting',
  running: 'Running',
  pausing: 'Pausing…',
  cancelling: 'Cancelling…',
  paused: 'Paused',
  failed: 'Failed',
};

/** A labelled progress bar; `fraction` null = unknown total (an indeterminate bar). */
function Bar({
  label,
  fraction,
  testId,
  data,
  children,
}: {
  label: string;
  fraction: number | null;
  testId: string;
  data?: Record<string, string | number | undefined>;
  children: ReactNode;
}) {
  const pct = fraction === null ? null : Math.max(0, Math.min(1, fraction)) * 100;
  const attrs: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(data ?? {})) if (v !== undefined) attrs[`data-${k}`] = v;
  return (
    <div className="ds-bar" data-testid={testId} {...attrs}>
      <div className="ds-bar-head">
        <span className="ds-bar-label">{label}</span>
        <span className="ds-bar-pct">{pct === null ? '' : `${pct.toFixed(pct < 10 ? 1 : 0)}%`}</span>
      </div>
      <div
        className={`ds-bar-track${pct === null ? ' ds-bar-indeterminate' : ''}`}
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct === null ? undefined : Math.round(pct)}
      >
        <span style={pct === null ? undefined : { width: `${pct}%` }} />
      </div>
      <div className="ds-bar-foot muted small">{children}</div>
    </div>
  );
}

export function JobCard({
  view,
  onPause,
  onResume,
  onCancel,
  onDismiss,
}: {
  view: JobView;
  onPause: () => void;
  onResume: () => void;
  onCancel: () => void;
  onDismiss: () => void;
}) {
  const { progress: p, download: d, state } = view;
  const live = state === 'running' || state === 'starting';
  const busy = state === 'pausing' || state === 'cancelling' || state === 'starting';
  const showDownload = !!d || (view.stage === 'downloading' && live);
  const dlFraction = d?.total ? d.bytes / d.total : null;

  let tokFraction: number | null = null;
  if (p) {
    if (p.tokensTotal) tokFraction = p.tokens / p.tokensTotal;
    else if (p.textBytesTotal) tokFraction = p.textBytes / p.textBytesTotal;
  }
  if (view.stage === 'finishing' && live) tokFraction = 1;
  const showTokens = !!p && (p.stage === 'tokenizing' || p.stage === 'finishing' || p.tokens > 0);

  return (
    <section
      className={`card card-tight ds-job ds-job-${state}`}
      aria-label={`Preparation of ${view.datasetId}`}
      data-testid="dataset-job"
      data-dataset={view.datasetId}
      data-state={state}
    >
      <header className="ds-job-head">
        <div className="ds-job-title">
          <h3>
            {view.datasetId} {view.source !== view.datasetId && <span className="muted small">from {view.source}</span>}
          </h3>
          <span className={`pill ds-state ds-state-${state}`} data-testid="job-state">
            {STATE_LABEL[state]}
            {live ? ` · ${STAGE_LABEL[view.stage]}` : ''}
          </span>
          {p && p.filesTotal > 1 && (
            <span className="muted small">
              file {Math.min(p.filesDone + 1, p.filesTotal)} of {p.filesTotal}
              {p.file ? ` (${p.file})` : ''}
            </span>
          )}
        </div>
        <div className="ds-job-actions">
          {(state === 'running' || state === 'pausing' || state === 'starting') && (
            <button
              type="button"
              className="button"
              onClick={onPause}
              disabled={busy}
              title="Stop now and keep what is finished; Resume continues from there"
            >
              {state === 'pausing' ? 'Pausing…' : 'Pause'}
            </button>
          )}
          {(state === 'paused' || state === 'failed') && (
            <button
              type="button"
              className="button button-primary"
              onClick={onResume}
              title="Continue where it stopped"
            >
              {state === 'failed' ? 'Try again' : 'Resume'}
            </button>
          )}
          <button
            type="button"
            className="button button-danger"
            onClick={onCancel}
            disabled={state === 'cancelling'}
            title="Stop and delete what was downloaded and tokenized"
          >
            Cancel…
          </button>
          {state === 'failed' && (
            <button
              type="button"
              className="button"
              onClick={onDismiss}
              title="Hide this; the files it left stay and the list shows them"
            >
              Dismiss
            </button>
          )}
        </div>
      </header>

      {showDownload && (
        <Bar
          label="Download"
          fraction={dlFraction}
          testId="download-progress"
          data={{ bytes: d?.bytes ?? 0, total: d?.total }}
        >
          {d ? (
            <>
              <span>
                {bytes(d.bytes)}
                {d.total ? ` of ${bytes(d.total)}` : ''}
              </span>
              {live && d.bytesPerSec > 0 && <span>{bytes(d.bytesPerSec)}/s</span>}
              {live && d.etaSec !== undefined && <span>ETA {duration(d.etaSec)}</span>}
              {!live && d.total !== undefined && d.bytes < d.total && <span>the part downloaded is kept</span>}
            </>
          ) : (
            <span>Connecting…</span>
          )}
        </Bar>
      )}

      {showTokens && p && (
        <Bar
          label="Tokenize"
          fraction={tokFraction}
          testId="tokenize-progress"
          data={{ tokens: p.tokens, 'tokens-total': p.tokensTotal }}
        >
          <span>
            {int(p.tokens)} tokens{p.tokensTotal ? ` of ${int(p.tokensTotal)}` : ''}
          </span>
          {p.textBytesTotal ? (
            <span>
              {bytes(p.textBytes)} of {bytes(p.textBytesTotal)} of text
            </span>
          ) : p.textBytes > 0 ? (
            <span>{bytes(p.textBytes)} of text</span>
          ) : null}
          {live && p.tokensPerSec > 0 && (
            <span>
              {compact(p.tokensPerSec)} tok/s ({bytes(p.bytesPerSec)}/s)
            </span>
          )}
          {live && p.etaSec !== undefined && <span>ETA {duration(p.etaSec)}</span>}
          <span>
            {p.shards} shard{p.shards === 1 ? '' : 's'} written
          </span>
        </Bar>
      )}

      {!showDownload && !showTokens && live && (
        <p className="muted small ds-job-wait">
          {view.stage === 'listing' ? 'Reading the source and starting the tokenizer…' : STAGE_LABEL[view.stage]}
        </p>
      )}
      {state === 'paused' && (
        <p className="muted small ds-job-note">
          Paused. What was downloaded and tokenized is kept; Resume continues from there
          {view.request.endpoint || view.source === 'fineweb-edu-10bt'
            ? ' (with the token from Settings, if one is set)'
            : ''}
          .
        </p>
      )}
      {state === 'failed' && view.error && <ErrorNote error={StudioError.fromPlain(view.error)} />}
      {view.actionError !== undefined && view.actionError !== null && <ErrorNote error={view.actionError} />}
    </section>
  );
}
