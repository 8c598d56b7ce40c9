import { useCallback, useEffect, useId, useMemo, useRef, useState } from 'react';
import type { RunStatus } from '../../../shared/contract';
import { EmptyState } from '../../components/EmptyState';
import { ErrorNote } from '../../components/ErrorNote';
import { Icon } from '../../components/Icon';
import { StatusPill } from '../../components/StatusPill';
import { compact, dateTime, duration, fixed, fullDateTime, int } from '../../format';
import { href, pageHref } from '../../router';
import {
  canDelete,
  engineUsedLabel,
  modelLabel,
  shortShape,
  plannedSteps,
  RUN_STATUS_LIST,
  runSeconds,
  STATUS_LABEL,
  type Run,
} from '../../run-info';
import { useClient, useRequest } from '../../useInvoke';
import { useStudioEvent } from '../../useEvent';
import { useTicker } from '../../useTicker';
import { DeleteRunDialog, EditRunDialog } from './RunDialogs';

/** What the table shows of a run beyond the Run row itself: from its metrics, kept live by events. */
interface Extra {
  tokPerSec?: number;
  hellaswag?: number;
}

const NO_RUNS: Run[] = [];

export function RunsPage() {
  const client = useClient();
  const {
    state: load,
    refresh: reload,
    setData: setRuns,
  } = useRequest(() => client.invoke('runs-list', { limit: 1000 }), [client]);
  const runs = load.data ?? NO_RUNS;
  const [extras, setExtras] = useState<Record<string, Extra>>({});
  const [search, setSearch] = useState('');
  const [statusFilter, setStatusFilter] = useState<RunStatus | 'all'>('all');
  const [editing, setEditing] = useState<Run | null>(null);
  const [deleting, setDeleting] = useState<Run | null>(null);
  const fetched = useRef(new Set<string>());

  // The latest tok/s and HellaSwag of each run, from its metrics (once per run; events keep them live after).
  useEffect(() => {
    for (const r of runs) {
      if (fetched.current.has(r.id)) continue;
      fetched.current.add(r.id);
      Promise.all([
        client.invoke('runs-metrics', {
          id: r.id,
          names: ['train/tok_per_sec'],
          sinceStep: Math.max(-1, r.stepsDone - 3),
        }),
        client.invoke('runs-metrics', { id: r.id, names: ['hellaswag/acc_norm'] }),
      ]).then(
        ([tps, hs]) => {
          const lastOf = (vals: (number | null)[] | undefined) => {
            if (!vals) return undefined;
            for (let i = vals.length - 1; i >= 0; i--) {
              const v = vals[i];
              if (v !== null && Number.isFinite(v)) return v;
            }
            return undefined;
          };
          const tokPerSec = lastOf(tps['train/tok_per_sec']?.values);
          const hellaswag = lastOf(hs['hellaswag/acc_norm']?.values);
          setExtras((x) => ({
            ...x,
            [r.id]: { tokPerSec: x[r.id]?.tokPerSec ?? tokPerSec, hellaswag: x[r.id]?.hellaswag ?? hellaswag },
          }));
        },
        () => fetched.current.delete(r.id),
      );
    }
  }, [client, runs]);

  const patchRun = useCallback(
    (id: string, patch: (r: Run) => Run) => setRuns((rs) => rs.map((r) => (r.id === id ? patch(r) : r))),
    [setRuns],
  );

  useStudioEvent('run-status', (p) => {
    if (!runs.some((r) => r.id === p.runId)) {
      void reload();
      return;
    }
    patchRun(p.runId, (r) => ({ ...r, status: p.status }));
    client.invoke('runs-get', { id: p.runId }).then(
      (r) => patchRun(p.runId, () => r),
      () => undefined,
    );
  });
  useStudioEvent('run-step', (p) => {
    patchRun(p.runId, (r) => ({ ...r, stepsDone: p.step + 1, tokensSeen: p.tokensSeen }));
    setExtras((x) => ({ ...x, [p.runId]: { ...x[p.runId], tokPerSec: p.tokensPerSec } }));
  });
  useStudioEvent('run-eval', (p) => {
    if (p.name === 'val/loss' && Number.isFinite(p.value)) {
      patchRun(p.runId, (r) => ({
        ...r,
        bestValLoss: r.bestValLoss === null ? p.value : Math.min(r.bestValLoss, p.value),
      }));
    } else if (p.name === 'hellaswag/acc_norm') {
      setExtras((x) => ({ ...x, [p.runId]: { ...x[p.runId], hellaswag: p.value } }));
    }
  });
  useStudioEvent('run-checkpoint', (p) => patchRun(p.runId, (r) => ({ ...r, lastCheckpointStep: p.step })));
  useStudioEvent('run-deleted', (p) => setRuns((rs) => rs.filter((r) => r.id !== p.runId)));

  const counts = useMemo(() => {
    const c: Partial<Record<RunStatus, number>> = {};
    for (const r of runs) c[r.status] = (c[r.status] ?? 0) + 1;
    return c;
  }, [runs]);

  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    return runs.filter((r) => {
      if (statusFilter !== 'all' && r.status !== statusFilter) return false;
      if (!q) return true;
      const hay = [r.name, r.id, r.notes, r.preset ?? '', modelLabel(r), String(r.config.dataset ?? ''), ...r.tags]
        .join('\n')
        .toLowerCase();
      return hay.includes(q);
    });
  }, [runs, search, statusFilter]);

  const anyRunning = runs.some((r) => r.status === 'running');
  const now = useTicker(anyRunning);
  const searchId = useId();
  const filterId = useId();
  const [picked, setPicked] = useState<string[]>([]);
  const pickedLive = picked.filter((id) => runs.some((r) => r.id === id));
  const togglePick = (id: string) => setPicked((p) => (p.includes(id) ? p.filter((x) => x !== id) : [...p, id]));

  if (load.status === 'loading')
    return (
      <p className="muted" aria-busy="true">
        Loading the runs…
      </p>
    );
  if (load.status === 'error') return <ErrorNote error={load.error} onRetry={reload} />;

  if (runs.length === 0) {
    return (
      <EmptyState icon="runs" title="No runs yet">
        <p>Start one from a preset: the nano preset trains on any CPU in a few minutes.</p>
        <a className="button button-primary" href={href({ page: 'new-run' })}>
          New run
        </a>
      </EmptyState>
    );
  }

  return (
    <div className="stack">
      <div className="toolbar runs-toolbar">
        <div className="search">
          <label className="visually-hidden" htmlFor={searchId}>
            Search runs
          </label>
          <input
            id={searchId}
            type="search"
            placeholder="Search name, id, tag, notes…"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
        </div>
        <div className="inline-select">
          <label className="muted small" htmlFor={filterId}>
            Status
          </label>
          <select
            id={filterId}
            value={statusFilter}
            onChange={(e) => setStatusFilter(e.target.value as RunStatus | 'all')}
          >
            <option value="all">All ({runs.length})</option>
            {RUN_STATUS_LIST.map((s) => (
              <option key={s} value={s}>
                {STATUS_LABEL[s]} ({counts[s] ?? 0})
              </option>
            ))}
          </select>
        </div>
        <span className="spacer" />
        <span className="muted small" aria-live="polite">
          {shown.length === runs.length
            ? `${runs.length} run${runs.length === 1 ? '' : 's'}`
            : `${shown.length} of ${runs.length} runs`}
        </span>
        {pickedLive.length >= 2 && pickedLive.length <= 10 ? (
          <a className="button" href={pageHref('compare', { runs: pickedLive.join(',') })}>
            Compare {pickedLive.length} runs
          </a>
        ) : (
          <button type="button" className="button" disabled title="Tick 2 to 10 runs to compare them">
            Compare{pickedLive.length > 10 ? ` (at most 10, ${pickedLive.length} ticked)` : ''}
          </button>
        )}
        <a className="button button-primary" href={href({ page: 'new-run' })}>
          New run
        </a>
      </div>

      <div className="table-wrap card card-flush">
        <table className="table table-dense table-sticky-actions runs-table" aria-label="Runs">
          <thead>
            <tr>
              <th scope="col" className="pick-cell">
                <span className="visually-hidden">Compare</span>
              </th>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col" title="The preset, the model that trained and the engine that ran it">
                Preset
              </th>
              <th scope="col" className="num">
                Steps
              </th>
              <th scope="col" className="num">
                Tokens
              </th>
              <th scope="col" className="num">
                Best val loss
              </th>
              <th scope="col" className="num">
                HellaSwag
              </th>
              <th scope="col" className="num">
                tok/s
              </th>
              <th scope="col">Started</th>
              <th
                scope="col"
                className="num"
                title="Since the run was last started or resumed (its page shows the training time over every attempt)"
              >
                Duration
              </th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shown.length === 0 && (
              <tr>
                <td colSpan={12} className="muted table-empty">
                  No run matches{search ? ` “${search}”` : ''}
                  {statusFilter !== 'all' ? ` with status ${STATUS_LABEL[statusFilter]}` : ''}.
                </td>
              </tr>
            )}
            {shown.map((r) => (
              <RunRow
                key={r.id}
                run={r}
                extra={extras[r.id]}
                now={now}
                picked={picked.includes(r.id)}
                onPick={() => togglePick(r.id)}
                onEdit={() => setEditing(r)}
                onDelete={() => setDeleting(r)}
              />
            ))}
          </tbody>
        </table>
      </div>

      {editing && (
        <EditRunDialog
          run={editing}
          onClose={() => setEditing(null)}
          onSaved={(r) => {
            patchRun(r.id, () => r);
            setEditing(null);
          }}
        />
      )}
      {deleting && (
        <DeleteRunDialog
          run={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={(id) => {
            setRuns((rs) => rs.filter((x) => x.id !== id));
            setDeleting(null);
          }}
        />
      )}
    </div>
  );
}

/** A step count, compact once the run is long (100K/100K rather than 100,000/100,000). */
function stepCount(n: number, planned: number | undefined): string {
  return (planned ?? n) >= 10_000 ? compact(n) : int(n);
}

function RunRow({
  run,
  extra,
  now,
  picked,
  onPick,
  onEdit,
  onDelete,
}: {
  run: Run;
  extra?: Extra;
  now: number;
  picked: boolean;
  onPick: () => void;
  onEdit: () => void;
  onDelete: () => void;
}) {
  const planned = plannedSteps(run);
  const progress = planned ? Math.min(1, run.stepsDone / planned) : 0;
  const deletable = canDelete(run.status);
  return (
    <tr data-run-id={run.id} data-status={run.status}>
      <td className="pick-cell">
        <input type="checkbox" checked={picked} onChange={onPick} aria-label={`Compare ${run.name}`} />
      </td>
      <th scope="row" className="run-name-cell">
        <a href={href({ page: 'run', runId: run.id })} className="run-link" title={run.id}>
          {run.name}
        </a>
        {run.tags.length > 0 && (
          <span className="run-sub">
            {run.tags.map((t) => (
              <span key={t} className="tag">
                {t}
              </span>
            ))}
          </span>
        )}
        {run.notes && (
          <span className="run-notes-snippet muted" title={run.notes}>
            {run.notes}
          </span>
        )}
      </th>
      <td>
        <StatusPill
          status={run.status}
          title={run.error ? `${run.error.message}${run.error.hint ? `\n${run.error.hint}` : ''}` : undefined}
        />
      </td>
      <td>
        <span className="preset-cell">
          {run.preset ?? modelLabel(run)}
          {run.preset && (
            <span className="muted small" title={modelLabel(run)}>
              {shortShape(run)}
            </span>
          )}
          {run.attempts.length > 0 && (
            <span className="muted small" title={`engine: ${engineUsedLabel(run)}`}>
              {run.attempts[run.attempts.length - 1]!.engine}
            </span>
          )}
        </span>
      </td>
      <td className="num">
        <span
          className="steps-cell"
          title={`${int(run.stepsDone)} of ${planned !== undefined ? int(planned) : '?'} steps`}
        >
          {stepCount(run.stepsDone, planned)}
          <span className="muted">/{planned !== undefined ? stepCount(planned, planned) : '?'}</span>
        </span>
        <span className="progress progress-thin" aria-hidden="true">
          <span style={{ width: `${(progress * 100).toFixed(1)}%` }} />
        </span>
      </td>
      <td className="num" title={int(run.tokensSeen)}>
        {compact(run.tokensSeen)}
      </td>
      <td className="num">{fixed(run.bestValLoss, 4)}</td>
      <td className="num">{extra?.hellaswag !== undefined ? `${(extra.hellaswag * 100).toFixed(1)}%` : '—'}</td>
      <td className="num">{compact(extra?.tokPerSec)}</td>
      <td className="nowrap" title={fullDateTime(run.startedAt ?? run.createdAt)}>
        {dateTime(run.startedAt)}
      </td>
      <td className="num">{duration(runSeconds(run, now))}</td>
      <td className="row-actions">
        <button
          type="button"
          className="icon-button"
          onClick={onEdit}
          aria-label={`Edit name, tags and notes of ${run.name}`}
          title="Edit name, tags and notes"
        >
          <Icon name="edit" size={16} />
        </button>
        <button
          type="button"
          className="icon-button icon-button-danger"
          onClick={onDelete}
          disabled={!deletable}
          aria-label={`Delete ${run.name}`}
          title={deletable ? 'Delete the run and its files' : 'Stop the run before deleting it'}
        >
          <Icon name="trash" size={16} />
        </button>
      </td>
    </tr>
  );
}
