import { accPercent } from '../../../shared/accuracy';
import { Fragment, useCallback, useEffect, useId, useMemo, useRef, useState, type ReactNode } from 'react';
import { ColumnsMenu } from '../../components/ColumnsMenu';
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
  runSeconds,
  STATUS_LABEL,
  type Run,
} from '../../run-info';
import { normalizeColumns, visibleColumns, type ColumnDef } from '../../components/table-columns';
import { useClient, useInvoke, useRequest } from '../../useInvoke';
import { usePersistentState } from '../../usePersistentState';
import { useStudioEvent } from '../../useEvent';
import { useTicker } from '../../useTicker';
import { DeleteRunDialog, EditRunDialog } from './RunDialogs';
import {
  GROUP_BYS,
  GROUP_LABEL,
  groupRuns,
  runDataset,
  statusChoices,
  statusSummary,
  type GroupBy,
  type StatusFilter,
} from './runs-view';

/** What the table shows of a run beyond the Run row itself: from its metrics, kept live by events. */
interface Extra {
  tokPerSec?: number;
  hellaswag?: number;
}

const NO_RUNS: Run[] = [];

/**
 * What the Columns menu says of the columns that a narrow table leaves out (runs.css hides them, by the table's
 * width, so that the others and the actions fit without scrolling).
 */
const NARROW = 'wide tables only';

/** The columns the user may show, hide and move (the tick box, the name and the row actions always show). */
const COLUMNS: readonly (ColumnDef & { header: string; title?: string; num?: boolean })[] = [
  { id: 'status', label: 'Status', header: 'Status' },
  {
    id: 'preset',
    label: 'Preset',
    header: 'Preset',
    title: 'The preset, the model that trained and the engine that ran it',
  },
  { id: 'dataset', label: 'Dataset', header: 'Dataset', hiddenByDefault: true },
  { id: 'steps', label: 'Steps', header: 'Steps', num: true },
  { id: 'tokens', label: 'Tokens', header: 'Tokens', num: true, title: 'Tokens trained on', note: NARROW },
  { id: 'valLoss', label: 'Best val loss', header: 'Val loss', num: true, title: 'The best (lowest) val loss' },
  {
    id: 'hellaswag',
    label: 'HellaSwag',
    header: 'HellaSwag',
    num: true,
    title: 'The latest HellaSwag acc_norm',
    note: NARROW,
  },
  {
    id: 'tokPerSec',
    label: 'Tokens per second',
    header: 'tok/s',
    num: true,
    title: 'Tokens per second, latest',
    note: NARROW,
  },
  { id: 'started', label: 'Started', header: 'Started' },
  {
    id: 'duration',
    label: 'Duration',
    header: 'Duration',
    num: true,
    note: NARROW,
    title: 'Since the run was last started or resumed (its page shows the training time over every attempt)',
  },
];
const COLUMN_BY_ID = new Map(COLUMNS.map((c) => [c.id, c]));
const DEFAULT_PREFS = {
  order: COLUMNS.map((c) => c.id),
  hidden: COLUMNS.filter((c) => c.hiddenByDefault).map((c) => c.id),
};

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
  const [statusFilter, setStatusFilter] = useState<StatusFilter>('all');
  const [savedColumns, setSavedColumns] = usePersistentState<object>('runs.columns', DEFAULT_PREFS);
  const columnPrefs = useMemo(() => normalizeColumns(savedColumns, COLUMNS), [savedColumns]);
  const columns = visibleColumns(columnPrefs);
  const [savedGroupBy, setGroupBy] = usePersistentState<string>('runs.groupBy', 'none');
  const groupBy: GroupBy = (GROUP_BYS as readonly string[]).includes(savedGroupBy) ? (savedGroupBy as GroupBy) : 'none';
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

  const choices = useMemo(() => statusChoices(runs, statusFilter), [runs, statusFilter]);

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
  const groupId = useId();
  const groups = useMemo(() => groupRuns(shown, groupBy), [shown, groupBy]);
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

  if (runs.length === 0) return <NoRuns />;

  // the tick box, the name, the chosen columns, the actions
  const span = columns.length + 3;
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

      <div className="toolbar runs-view-bar">
        <div className="status-filter" role="group" aria-label="Status" title={statusSummary(choices)}>
          {choices.map((c) => (
            <button
              key={c.value}
              type="button"
              className="status-choice"
              aria-pressed={statusFilter === c.value}
              data-status-choice={c.value}
              onClick={() => setStatusFilter(c.value)}
            >
              {c.label} <span className="status-count">{c.count}</span>
            </button>
          ))}
        </div>
        <span className="spacer" />
        <div className="inline-select">
          <label className="muted small" htmlFor={groupId}>
            Group by
          </label>
          <select id={groupId} value={groupBy} onChange={(e) => setGroupBy(e.target.value)}>
            {GROUP_BYS.map((g) => (
              <option key={g} value={g}>
                {GROUP_LABEL[g]}
              </option>
            ))}
          </select>
        </div>
        <ColumnsMenu defs={COLUMNS} prefs={columnPrefs} onChange={setSavedColumns} tableName="runs" />
      </div>

      <div className="table-wrap card card-flush runs-table-wrap">
        <table className="table table-dense table-sticky-actions runs-table" aria-label="Runs">
          <thead>
            <tr>
              <th scope="col" className="pick-cell">
                <span className="visually-hidden">Compare</span>
              </th>
              <th scope="col" data-col="name">
                Name
              </th>
              {columns.map((id) => {
                const c = COLUMN_BY_ID.get(id)!;
                return (
                  <th key={id} scope="col" data-col={id} className={c.num ? 'num' : undefined} title={c.title}>
                    {c.header}
                  </th>
                );
              })}
              <th scope="col" data-col="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          {shown.length === 0 && (
            <tbody>
              <tr>
                <td colSpan={span} className="muted table-empty">
                  No run matches{search ? ` “${search}”` : ''}
                  {statusFilter !== 'all' ? ` with status ${STATUS_LABEL[statusFilter]}` : ''}.
                </td>
              </tr>
            </tbody>
          )}
          {groups.map((g) => (
            <tbody key={g.key} data-group={groupBy === 'none' ? undefined : g.key}>
              {groupBy !== 'none' && (
                <tr className="group-row">
                  <th scope="rowgroup" colSpan={span}>
                    <span className="group-by muted">{GROUP_LABEL[groupBy]}</span> {g.label}{' '}
                    <span className="muted small">
                      · {g.runs.length} run{g.runs.length === 1 ? '' : 's'}
                    </span>
                  </th>
                </tr>
              )}
              {g.runs.map((r) => (
                <RunRow
                  key={r.id}
                  run={r}
                  columns={columns}
                  extra={extras[r.id]}
                  now={now}
                  picked={picked.includes(r.id)}
                  onPick={() => togglePick(r.id)}
                  onEdit={() => setEditing(r)}
                  onDelete={() => setDeleting(r)}
                />
              ))}
            </tbody>
          ))}
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

/** No run yet: a run needs a prepared dataset, so the way starts there when the workspace has none. */
function NoRuns() {
  const [datasets] = useInvoke('datasets-list');
  const hasData = datasets.status === 'ok' && datasets.data.some((d) => d.status === 'ready');
  return (
    <EmptyState icon="runs" title="No runs yet">
      <p>
        A run trains on a prepared dataset.{' '}
        {hasData
          ? 'Start one from a preset: the nano preset trains on any CPU in a few minutes.'
          : 'Prepare one on Datasets first (the builtin stories or Tiny Shakespeare take a minute), then start a run from a preset: the nano preset trains on any CPU in a few minutes.'}
      </p>
      <div className="empty-actions">
        <a className={`button${hasData ? '' : ' button-primary'}`} href={href({ page: 'datasets' })}>
          {hasData ? 'Datasets' : 'Prepare a dataset'}
        </a>
        <a className={`button${hasData ? ' button-primary' : ''}`} href={href({ page: 'new-run' })}>
          New run
        </a>
      </div>
    </EmptyState>
  );
}

function RunRow({
  run,
  columns,
  extra,
  now,
  picked,
  onPick,
  onEdit,
  onDelete,
}: {
  run: Run;
  columns: readonly string[];
  extra?: Extra;
  now: number;
  picked: boolean;
  onPick: () => void;
  onEdit: () => void;
  onDelete: () => void;
}) {
  const deletable = canDelete(run.status);
  return (
    <tr data-run-id={run.id} data-status={run.status}>
      <td className="pick-cell">
        <input type="checkbox" checked={picked} onChange={onPick} aria-label={`Compare ${run.name}`} />
      </td>
      <th scope="row" className="run-name-cell" data-col="name">
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
      {columns.map((id) => (
        <Fragment key={id}>{runCell(id, run, extra, now)}</Fragment>
      ))}
      <td className="row-actions" data-col="actions">
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

/** One cell of a chosen column. */
function runCell(id: string, run: Run, extra: Extra | undefined, now: number): ReactNode {
  switch (id) {
    case 'status':
      return (
        <td data-col={id}>
          <StatusPill
            status={run.status}
            title={run.error ? `${run.error.message}${run.error.hint ? `\n${run.error.hint}` : ''}` : undefined}
          />
        </td>
      );
    case 'preset':
      return (
        <td data-col={id}>
          <span className="preset-cell">
            {run.preset ? (
              <>
                {run.preset}
                <span className="muted small" title={modelLabel(run)}>
                  {shortShape(run)}
                </span>
              </>
            ) : (
              <span title={modelLabel(run)}>{shortShape(run)}</span>
            )}
            {run.attempts.length > 0 && (
              <span className="muted small" title={`engine: ${engineUsedLabel(run)}`}>
                {run.attempts[run.attempts.length - 1]!.engine}
              </span>
            )}
          </span>
        </td>
      );
    case 'dataset':
      return (
        <td data-col={id} className="dataset-cell">
          {runDataset(run) ?? '—'}
        </td>
      );
    case 'steps': {
      const planned = plannedSteps(run);
      const progress = planned ? Math.min(1, run.stepsDone / planned) : 0;
      return (
        <td className="num" data-col={id}>
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
      );
    }
    case 'tokens':
      return (
        <td className="num" data-col={id} title={int(run.tokensSeen)}>
          {compact(run.tokensSeen)}
        </td>
      );
    case 'valLoss':
      return (
        <td className="num" data-col={id}>
          {fixed(run.bestValLoss, 4)}
        </td>
      );
    case 'hellaswag':
      return (
        <td className="num" data-col={id}>
          {accPercent(extra?.hellaswag)}
        </td>
      );
    case 'tokPerSec':
      return (
        <td className="num" data-col={id}>
          {compact(extra?.tokPerSec)}
        </td>
      );
    case 'started':
      return (
        <td className="nowrap" data-col={id} title={fullDateTime(run.startedAt ?? run.createdAt)}>
          {dateTime(run.startedAt)}
        </td>
      );
    case 'duration':
      return (
        <td className="num" data-col={id}>
          {duration(runSeconds(run, now))}
        </td>
      );
    default:
      return <td data-col={id} />;
  }
}
