/**
 * The parts of the HellaSwag tab that show evaluations: the progress of one running, the table of results with the
 * reference points, and the summary of the selected one (acc_norm on a scale of the references, with its standard
 * error) above its per-example browser.
 */
import { useMemo } from 'react';
import { StudioError } from '../../../shared/errors';
import { REFERENCE } from '../../../shared/reference';
import { EmptyState } from '../../components/EmptyState';
import { ErrorNote } from '../../components/ErrorNote';
import { Icon } from '../../components/Icon';
import { dateTime, duration, fixed, fullDateTime, int } from '../../format';
import { ExampleBrowser } from './ExampleBrowser';
import {
  accPercent,
  accPointsDiff,
  BASELINES,
  evalLimit,
  evalModelLabel,
  progressRate,
  stdErr,
  summaryOf,
  type Eval,
  type HellaswagSummary,
  type Progress,
} from './evals-info';

const STATUS_TEXT: Record<string, string> = {
  queued: 'Queued',
  running: 'Running',
  done: 'Done',
  failed: 'Failed',
  cancelled: 'Cancelled',
  interrupted: 'Interrupted',
};

export function RunProgress({
  ev,
  progress,
  queued,
  onCancel,
}: {
  ev: Eval;
  progress?: Progress;
  queued: boolean;
  onCancel: () => void;
}) {
  const rate = progress ? progressRate(progress) : { perSec: null, etaSec: null };
  const frac = progress && progress.total > 0 ? progress.done / progress.total : 0;
  return (
    <section
      className="card card-tight hs-progress-card"
      aria-label={`Evaluating ${evalModelLabel(ev)}`}
      data-testid="eval-progress"
    >
      <div className="toolbar">
        <strong>Evaluating {evalModelLabel(ev)}</strong>
        <span className="spacer" />
        <button type="button" className="button button-danger" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <div
        className="progress hs-bar"
        role="progressbar"
        aria-label="HellaSwag examples scored"
        aria-valuemin={0}
        aria-valuemax={progress?.total ?? 1}
        aria-valuenow={progress?.done ?? 0}
      >
        <span style={{ width: `${(frac * 100).toFixed(1)}%` }} />
      </div>
      <p className="small hs-progress-text" aria-live="polite" data-testid="eval-progress-text">
        {progress
          ? `${int(progress.done)} / ${int(progress.total)} examples · acc_norm so far ${accPercent(progress.accNorm)}` +
            (rate.perSec !== null
              ? ` · ${rate.perSec >= 10 ? int(rate.perSec) : fixed(rate.perSec, 1)} examples/s`
              : '') +
            (rate.etaSec !== null ? ` · ${duration(rate.etaSec)} left` : '')
          : queued
            ? 'Queued: it starts when the evaluation before it ends.'
            : 'Loading the model and the examples…'}
      </p>
    </section>
  );
}

/** Where acc_norm values sit between chance and the references, with ±1 standard error. */
function AccScale({ value, n, label }: { value: number; n: number; label: string }) {
  const lo = 0.2;
  const hi = Math.max(0.4, Math.ceil((value + 0.05) * 20) / 20);
  const pos = (x: number) => `${(((Math.min(hi, Math.max(lo, x)) - lo) / (hi - lo)) * 100).toFixed(2)}%`;
  const se = stdErr(value, n);
  return (
    <figure className="hs-scale" aria-label={`acc_norm ${accPercent(value)} of ${label} against the reference points`}>
      <div className="hs-scale-track">
        {BASELINES.map((b) => (
          <span
            key={b.label}
            className="hs-scale-ref"
            style={{ left: pos(b.accNorm) }}
            title={`${b.label}: ${accPercent(b.accNorm)}`}
          >
            <span className="hs-scale-ref-label">
              {b.label} {accPercent(b.accNorm)}
            </span>
          </span>
        ))}
        {Number.isFinite(se) && (
          <span className="hs-scale-err" style={{ left: pos(value - se), right: `calc(100% - ${pos(value + se)})` }} />
        )}
        <span
          className="hs-scale-value"
          style={{ left: pos(value) }}
          title={`${label}: ${accPercent(value)} ± ${accPercent(se)}`}
        />
      </div>
      <figcaption className="muted small">
        {label}: <strong>{accPercent(value)}</strong> ± {accPercent(se)} (one standard error on {int(n)} examples)
      </figcaption>
    </figure>
  );
}

export function ResultsTable({
  evals,
  selected,
  progress,
  queued,
  onSelect,
  onCancel,
  onDelete,
}: {
  evals: Eval[];
  selected: string | undefined;
  progress: Record<string, Progress>;
  queued: Set<string>;
  onSelect: (e: Eval) => void;
  onCancel: (e: Eval) => void;
  onDelete: (e: Eval) => void;
}) {
  return (
    <div className="table-wrap">
      <table className="table table-dense hs-results" aria-label="HellaSwag results">
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col" className="num">
              Examples
            </th>
            <th scope="col" className="num">
              acc
            </th>
            <th scope="col" className="num">
              acc_norm
            </th>
            <th scope="col">Status</th>
            <th scope="col">Date</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {evals.length === 0 && (
            <tr>
              <td colSpan={7} className="muted table-empty">
                No HellaSwag evaluations yet: choose a model above and run one. The reference points are below.
              </td>
            </tr>
          )}
          {evals.map((e) => (
            <ResultRow
              key={e.id}
              ev={e}
              isSelected={e.id === selected}
              progress={progress[e.id]}
              queued={queued.has(e.id)}
              onSelect={() => onSelect(e)}
              onCancel={() => onCancel(e)}
              onDelete={() => onDelete(e)}
            />
          ))}
        </tbody>
        <tbody className="hs-baselines">
          <tr>
            <th scope="rowgroup" colSpan={7} className="hs-baselines-head">
              Reference points (10,042 validation examples)
            </th>
          </tr>
          {BASELINES.map((b) => (
            <tr key={b.label} className="hs-baseline-row" data-baseline={b.label}>
              <th scope="row">
                {b.label} <span className="muted small hs-baseline-note">{b.note}</span>
              </th>
              <td className="num">{b.label === 'Random' ? '—' : '10,042'}</td>
              <td className="num">{accPercent(b.acc)}</td>
              <td className="num">
                <strong>{accPercent(b.accNorm)}</strong>
              </td>
              <td>
                <span className="muted small">reference</span>
              </td>
              <td />
              <td />
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function ResultRow({
  ev,
  isSelected,
  progress,
  queued,
  onSelect,
  onCancel,
  onDelete,
}: {
  ev: Eval;
  isSelected: boolean;
  progress?: Progress;
  queued: boolean;
  onSelect: () => void;
  onCancel: () => void;
  onDelete: () => void;
}) {
  const s = summaryOf(ev);
  const label = evalModelLabel(ev);
  const limit = evalLimit(ev);
  const status = ev.status === 'running' && queued ? 'queued' : ev.status;
  const beat = s ? BASELINES.filter((b) => b.label !== 'Random' && s.accNorm > b.accNorm).map((b) => b.label) : [];
  return (
    <tr
      data-eval-id={ev.id}
      data-status={status}
      aria-selected={isSelected}
      className={isSelected ? 'hs-row-selected' : undefined}
    >
      <th scope="row" className="hs-model-cell">
        <span title={label}>{label}</span>
        {ev.error && (
          <span className="run-sub hs-row-error" title={ev.error.hint}>
            {ev.error.message}
          </span>
        )}
      </th>
      <td className="num">
        {s
          ? int(s.n)
          : progress
            ? `${int(progress.done)} / ${int(progress.total)}`
            : limit !== null
              ? `${int(limit)} asked`
              : 'all'}
      </td>
      <td className="num">{s ? accPercent(s.acc) : '—'}</td>
      <td
        className="num"
        title={
          s
            ? `± ${accPercent(stdErr(s.accNorm, s.n))} (one standard error)${beat.length ? `; above ${beat.join(' and ')}` : ''}`
            : undefined
        }
      >
        {s ? (
          <strong>{accPercent(s.accNorm)}</strong>
        ) : progress ? (
          <span className="muted">{accPercent(progress.accNorm)}</span>
        ) : (
          '—'
        )}
      </td>
      <td>
        <span className={`pill status-${status}`} data-status={status}>
          {STATUS_TEXT[status] ?? status}
        </span>
      </td>
      <td title={fullDateTime(ev.createdAt)}>{dateTime(ev.createdAt)}</td>
      <td>
        <div className="row-actions">
          {ev.status === 'done' && (
            <button
              type="button"
              className="button"
              aria-pressed={isSelected}
              onClick={onSelect}
              aria-label={`Examples of ${label}, ${dateTime(ev.createdAt)}`}
            >
              Examples
            </button>
          )}
          {ev.status === 'running' && (
            <button type="button" className="button" onClick={onCancel}>
              Cancel
            </button>
          )}
          <button
            type="button"
            className="icon-button icon-button-danger"
            onClick={onDelete}
            aria-label={`Delete the evaluation of ${label}, ${dateTime(ev.createdAt)}`}
            title="Delete"
          >
            <Icon name="trash" />
          </button>
        </div>
      </td>
    </tr>
  );
}

export function SelectedEval({ ev, progress }: { ev: Eval; progress?: Progress }) {
  const s = summaryOf(ev);
  const label = evalModelLabel(ev);
  const skipped = useMemo(() => (s ? [...(s.skipped ?? []), ...(s.malformed ?? [])] : []), [s]);
  if (ev.status === 'running') {
    return (
      <p className="muted small" data-testid="selected-eval-pending">
        The examples of {label} appear here when the evaluation ends
        {progress ? ` (${int(progress.done)} of ${int(progress.total)} scored)` : ''}.
      </p>
    );
  }
  if (ev.status !== 'done' || !s) {
    return (
      <EmptyState
        icon="evals"
        title={`No examples: the evaluation ${STATUS_TEXT[ev.status]?.toLowerCase() ?? ev.status}`}
      >
        {ev.error ? <ErrorNote error={StudioError.fromPlain(ev.error)} /> : <p>Run it again to get a result.</p>}
      </EmptyState>
    );
  }
  return (
    <>
      <section className="card hs-summary" aria-label={`Result of ${label}`} data-testid="eval-summary">
        <div className="stat-strip">
          <Stat label="acc_norm" value={accPercent(s.accNorm)} sub={`${int(s.correctNorm)}/${int(s.n)}`} />
          <Stat label="acc" value={accPercent(s.acc)} sub={`${int(s.correct)}/${int(s.n)}`} />
          <Stat label="Examples" value={int(s.n)} sub={skipped.length ? `${int(skipped.length)} skipped` : undefined} />
          <Stat label="vs GPT-2 124M" value={accPointsDiff(s.accNorm - REFERENCE.hellaswag.gpt2.accNorm)} />
        </div>
        <AccScale value={s.accNorm} n={s.n} label={label} />
        {skipped.length > 0 && (
          <details className="small">
            <summary>
              {int(skipped.length)} example{skipped.length === 1 ? '' : 's'} not scored (longer than the model&apos;s
              context, or malformed)
            </summary>
            <ul className="notes">
              {skipped.slice(0, 20).map((k) => (
                <li key={`${k.line}-${k.message}`}>
                  line {k.line}: {k.message}
                </li>
              ))}
              {skipped.length > 20 && <li>… and {int(skipped.length - 20)} more</li>}
            </ul>
          </details>
        )}
      </section>
      <ExampleBrowser key={ev.id} ev={ev} summary={s as HellaswagSummary} />
    </>
  );
}

function Stat({ label, value, sub }: { label: string; value: string; sub?: string }) {
  return (
    <div className="stat">
      <span className="stat-label">{label}</span>
      <span className="stat-value">
        {value} {sub && <span className="muted">{sub}</span>}
      </span>
    </div>
  );
}
